"""One table from many runs: every ``results.json`` under a directory (a multirun's sweep dir, ``outputs/``).

Each run gives one row: its directory (relative), the Hydra overrides it ran with (``.hydra/overrides.yaml``
when present), and the summary (objective = level-1 NMI, the best baseline, tokens, novel rate, seconds).
``neurograph runs DIR`` and ``scripts/collect_runs.py DIR`` print it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["collect_runs"]

COLUMNS = (
    "name",
    "dataset",
    "signals",
    "objective",
    "best_baseline",
    "best_baseline_nmi",
    "novel_rate",
    "tokens_per_level",
    "seconds_stream",
)


def collect_runs(root: str | Path) -> pd.DataFrame:
    """The runs under ``root`` as one DataFrame, one row per run, sorted by directory."""
    import yaml

    root = Path(root)
    rows = []
    for res in sorted(root.rglob("results.json")):
        run_dir = res.parent
        summary = json.loads(res.read_text())["summary"]
        overrides_file = run_dir / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        row = {"run": str(run_dir.relative_to(root)) or ".", "overrides": " ".join(overrides or [])}
        row.update({k: summary.get(k) for k in COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", "overrides", *COLUMNS])
