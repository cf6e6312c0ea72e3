"""The main job's command line runs end to end in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_on_iris(tmp_path):
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "neurograph", "demo", "--dataset", "iris", "--json", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "novel_rate" in proc.stdout and "signals_per_s" in proc.stdout
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows] == ["emit (one by one)", "emit_batch"]
    assert all(r["signals"] == 150 and 0 < r["tokens"] <= 150 for r in rows)
    assert "CDNA auto" in proc.stdout and "level 1:" in proc.stdout  # calibrated to the data, fields shown
