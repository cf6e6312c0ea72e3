"""Where a run's numbers go: ``metrics.jsonl`` always, W&B when ``logger=wandb`` (wandb imported here only).

Every logger has ``log_metrics(row, step)``, ``log_results(figures, table)``, ``log_snapshot(path)`` and
``finish()``. :class:`JsonlLogger` appends one JSON object per line to ``metrics.jsonl``;
:class:`WandbLogger` starts a W&B run in the run directory with the resolved config, logs the same rows
per step, the report's figures and the metrics table as W&B objects, and the snapshot directory as an
artifact. Its mode ``auto`` is ``online`` when ``WANDB_API_KEY`` is set and ``offline`` otherwise (an
offline run syncs later with ``wandb sync``); ``WANDB_MODE`` in the environment wins over both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from neurograph.experiments.config import LoggerConfig

__all__ = ["JsonlLogger", "Loggers", "WandbLogger", "make_loggers", "plain"]


def plain(value: Any) -> Any:
    """A JSON-able copy (numpy scalars to Python, NaN to None)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlLogger:
    """Appends rows to ``metrics.jsonl`` (one JSON object a line, flushed per row)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self._fh = self.path.open("a", encoding="utf-8")

    def log_metrics(self, row: Mapping[str, Any], step: int | None = None) -> None:
        self._fh.write(json.dumps(plain({**row, **({"step": step} if step is not None else {})})) + "\n")
        self._fh.flush()

    def log_results(self, figures: Mapping[str, Any], table: pd.DataFrame) -> None:
        for row in table.to_dict(orient="records"):
            self.log_metrics({"phase": "eval", **row})

    def log_snapshot(self, path: Path) -> None:
        self.log_metrics({"phase": "snapshot", "path": str(path)})

    def finish(self) -> None:
        self._fh.close()


class WandbLogger:
    """A W&B run in the run directory (module docstring)."""

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any], name: str, tags: Sequence[str]
    ):
        import wandb

        self.cfg = cfg
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        mode = cfg.mode
        if os.environ.get("WANDB_MODE"):
            mode = os.environ["WANDB_MODE"]
        elif mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        self.run = wandb.init(
            project=cfg.project,
            dir=str(run_dir),
            config=plain(dict(config)),
            name=f"{name}-{Path(run_dir).name}",
            tags=list(tags),
            mode=mode,
            reinit=True,
        )

    def log_metrics(self, row: Mapping[str, Any], step: int | None = None) -> None:
        data = {
            k: v for k, v in plain(row).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self.run.log(data, step=step)

    def log_results(self, figures: Mapping[str, Any], table: pd.DataFrame) -> None:
        import wandb

        self.run.log({"metrics_table": wandb.Table(dataframe=table)})
        for title, fig in figures.items():
            self.run.log({title: wandb.Plotly(fig)})
        first = table.iloc[0].to_dict() if len(table) else {}
        self.run.summary.update({f"fields/{k}": v for k, v in plain(first).items() if k != "method"})

    def log_snapshot(self, path: Path) -> None:
        import wandb

        if not self.cfg.log_snapshot or not Path(path).is_dir():
            return
        art = wandb.Artifact("snapshot", type="neurograph-store")
        art.add_dir(str(path))
        self.run.log_artifact(art)

    def finish(self) -> None:
        self.run.finish()


class Loggers:
    """The run's loggers as one (``metrics.jsonl`` first)."""

    def __init__(self, loggers: Sequence[Any]) -> None:
        self.loggers = list(loggers)

    def log_metrics(self, row: Mapping[str, Any], step: int | None = None) -> None:
        for lg in self.loggers:
            lg.log_metrics(row, step)

    def log_results(self, figures: Mapping[str, Any], table: pd.DataFrame) -> None:
        for lg in self.loggers:
            lg.log_results(figures, table)

    def log_snapshot(self, path: Path) -> None:
        for lg in self.loggers:
            lg.log_snapshot(path)

    def finish(self) -> None:
        for lg in self.loggers:
            lg.finish()


def make_loggers(
    cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any], name: str, tags: Sequence[str] = ()
) -> Loggers:
    """``metrics.jsonl`` always, plus W&B for ``logger.name == "wandb"`` (``none``: nothing more)."""
    loggers: list[Any] = [JsonlLogger(run_dir)]
    if cfg.name == "wandb":
        loggers.append(WandbLogger(cfg, run_dir, config, name, tags))
    return Loggers(loggers)
