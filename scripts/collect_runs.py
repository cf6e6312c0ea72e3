"""Gather the runs under a directory (a multirun's sweep directory, outputs/) into one table.

    python scripts/collect_runs.py multirun/ablation/2026-01-01_12-00-00 [--csv runs.csv]

The same as ``neurograph runs DIR``; see :func:`neurograph.experiments.collect.collect_runs`.
"""

from __future__ import annotations

import sys

from neurograph.cli import main

if __name__ == "__main__":
    sys.exit(main(["runs", *sys.argv[1:]]))
