"""The tutorial runs top to bottom in a real kernel, with nbmake (as CI runs notebooks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbmake", reason="nbmake is not installed (pip install -e .[dev])")
pytest.importorskip("ipykernel", reason="the jupyter extra is not installed (pip install -e .[jupyter])")

TUTORIAL = Path(__file__).resolve().parents[2] / "notebooks" / "tutorial.ipynb"


def test_tutorial_is_checked_in_without_outputs() -> None:
    nb = json.loads(TUTORIAL.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    headings = [c["source"] for c in nb["cells"] if c["cell_type"] == "markdown"]
    examples = [h for h in map("".join, headings) if h.startswith("## ")]
    assert len(examples) == 15 and all("*Why:*" in h for h in examples)


@pytest.mark.slow
def test_tutorial_runs_with_nbmake(tmp_path: Path) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--nbmake",
            "--nbmake-timeout=300",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(TUTORIAL),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout
