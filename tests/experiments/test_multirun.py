"""A 2 x 2 multirun through the joblib launcher, in a subprocess, gathered into one table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_joblib_multirun_is_collected_into_one_table(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from neurograph.cli import main
    from neurograph.experiments.collect import collect_runs

    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "neurograph",
        "run",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        "debug=tiny",
        "dataset.n=120",
        "eval.baselines=[]",
        "report.enabled=false",
        "dynamics.steps=0,2",
        "cdna.token_strength=0.1,0.3",
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = collect_runs(sweep)
    assert len(table) == 4
    assert table["overrides"].nunique() == 4
    assert table["objective"].between(0, 1).all()
    assert main(["runs", str(sweep), "--csv", str(tmp_path / "runs.csv")]) == 0
    assert (tmp_path / "runs.csv").read_text().count("\n") == 5
