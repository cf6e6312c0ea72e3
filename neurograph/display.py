"""Rich display of the result objects: tables as pandas DataFrames and as escaped HTML.

The notebook shows an :class:`~neurograph.emit.results.EmitResult`, a
:class:`~neurograph.emit.results.BatchResult`, a :class:`~neurograph.fields.StepStats`, a
:class:`~neurograph.cdna.CDNA`, a :class:`~neurograph.hierarchy.view.Hierarchy` and the engine's status
as small tables. This module builds them, for every class in one place:

- ``*_frame(obj)`` returns the ``pandas.DataFrame`` behind the table (what ``obj.to_pandas()`` gives);
- ``*_html(obj)`` returns the HTML (what ``obj._repr_html_()`` gives): a pandas ``Styler`` table, every
  cell, header and caption escaped (a token label or an event type never injects markup), long tables
  cut to their first rows with a note saying how many were left out.

It sits at the bottom of the layers (it imports only the standard library, numpy and pandas), so every
class may delegate to it; the objects are read through their public attributes
(duck typing), never imported. IPython is not imported here: :mod:`neurograph.jupyter` registers these
renderers with the notebook's display formatter.
"""

from __future__ import annotations

import dataclasses
import html
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_ROWS",
    "Status",
    "batch_result_frame",
    "batch_result_html",
    "cdna_frame",
    "cdna_html",
    "emit_result_frame",
    "emit_result_html",
    "events_frame",
    "events_html",
    "frame_html",
    "hierarchy_frame",
    "hierarchy_html",
    "hierarchy_levels_frame",
    "neighbors_frame",
    "status_frame",
    "status_html",
    "step_stats_frame",
    "step_stats_html",
]

MAX_ROWS = 50  # rows drawn in an HTML table; the DataFrame keeps them all
_PRECISION = 4  # significant digits of floats in the HTML tables
_TABLE_CSS = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 12px; margin: 2px 0 8px 0;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold; padding: 2px;"},
    {"selector": "th", "props": "text-align: left; padding: 2px 8px; border-bottom: 1px solid #bbb;"},
    {"selector": "td", "props": "padding: 1px 8px; font-family: monospace; text-align: right;"},
]


# --- the one table renderer -----------------------------------------------------------------------
def frame_html(
    frame: pd.DataFrame,
    caption: str | None = None,
    *,
    max_rows: int = MAX_ROWS,
    index: bool = False,
    highlight: Iterable[bool] | None = None,
) -> str:
    """A DataFrame as an HTML table (pandas ``Styler``), every text escaped.

    Args:
        frame: the table.
        caption: a title above the table (escaped).
        max_rows: rows drawn; the caption says how many more the frame holds.
        index: draw the index as a first column.
        highlight: one bool per row of ``frame``; true rows get a tinted background.

    Returns:
        An HTML fragment (a ``<style>`` block and a ``<table>``).
    """
    n = len(frame)
    shown = frame.head(max_rows)
    note = f" (first {max_rows} of {n} rows)" if n > max_rows else ""
    text = (caption or "") + note
    shown = shown.map(_cell) if len(shown.columns) else shown
    styler = shown.style.format(escape="html", precision=_PRECISION, na_rep="")
    styler = styler.format_index(escape="html", axis=1).format_index(escape="html", axis=0)
    styler = styler.set_table_styles(_TABLE_CSS)
    if text:
        styler = styler.set_caption(html.escape(text.strip()))
    if not index:
        styler = styler.hide(axis="index")
    if highlight is not None:
        marks = list(highlight)[: len(shown)]
        tint = ["background-color: #fff3cd" if m else "" for m in marks]
        styler = styler.apply(lambda col: tint, axis=0)
    return styler.to_html()


def _cell(value: Any) -> Any:
    """A cell as the table shows it: sequences joined, numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        return ", ".join(_fmt(v) for v in items)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.{_PRECISION}g}"
    return str(value)


# --- emit results -----------------------------------------------------------------------------------
_SUMMARY = (
    "token_id",
    "is_novel",
    "n_neighbors",
    "nearest_distance",
    "anomaly_score",
    "resonance",
    "energy_delta",
    "activation_spread",
    "triggered_actions",
    "processing_time_us",
)


def emit_result_frame(result: Any) -> pd.DataFrame:
    """One row summing up what a signal did (an ``EmitResult``).

    Columns: token_id, is_novel, n_neighbors, nearest_distance (inf without neighbours), anomaly_score,
    resonance, energy_delta, activation_spread, triggered_actions (a list), processing_time_us; the same
    per-row columns as ``BatchResult.to_pandas()`` plus the last three.
    """
    neighbors = list(result["neighbors"])
    row = {
        "token_id": int(result["token_id"]),
        "is_novel": bool(result["is_novel"]),
        "n_neighbors": len(neighbors),
        "nearest_distance": float(neighbors[0]["distance"]) if neighbors else math.inf,
        "anomaly_score": float(result["anomaly_score"]),
        "resonance": float(result["resonance"]),
        "energy_delta": float(result["energy_delta"]),
        "activation_spread": int(result["activation_spread"]),
        "triggered_actions": list(result["triggered_actions"]),
        "processing_time_us": float(result["processing_time_us"]),
    }
    return pd.DataFrame([row], columns=list(_SUMMARY))


def neighbors_frame(result: Any) -> pd.DataFrame:
    """The neighbours of an ``EmitResult``, nearest first: token_id, distance, resonance, token_type,
    layer_affinity."""
    cols = ["token_id", "distance", "resonance", "token_type", "layer_affinity"]
    return pd.DataFrame([{c: nb[c] for c in cols} for nb in result["neighbors"]], columns=cols)


def emit_result_html(result: Any) -> str:
    """An ``EmitResult``: its summary row, then its neighbours."""
    what = "novel" if result["is_novel"] else "familiar"
    out = frame_html(emit_result_frame(result), f"EmitResult: token {int(result['token_id'])} ({what})")
    nb = neighbors_frame(result)
    if len(nb):
        out += frame_html(nb, "neighbors, nearest first")
    return out


def batch_result_frame(batch: Any) -> pd.DataFrame:
    """One row per signal of a ``BatchResult`` (its own ``to_pandas()``)."""
    return batch.to_pandas()


def batch_result_html(batch: Any, *, max_rows: int = 20) -> str:
    """A ``BatchResult``: a one-line summary, then its first rows."""
    frame = batch.to_pandas()
    n = len(frame)
    novel = int(frame["is_novel"].sum()) if n else 0
    caption = (
        f"BatchResult: {n} signals, {novel} novel ({novel / n:.1%}), "
        f"{float(getattr(batch, 'processing_time_us', 0.0)) / 1e3:.3g} ms"
        if n
        else "BatchResult: 0 signals"
    )
    return frame_html(frame, caption, max_rows=max_rows, highlight=frame["is_novel"].tolist() if n else None)


# --- dynamics -----------------------------------------------------------------------------------------
def step_stats_frame(stats: Any) -> pd.DataFrame:
    """One row of a ``StepStats`` (every field of the dataclass)."""
    data = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else dict(stats)
    return pd.DataFrame([data])


def step_stats_html(stats: Any) -> str:
    """A ``StepStats`` as a one-row table."""
    frame = step_stats_frame(stats)
    steps = int(frame["steps"].iloc[0]) if "steps" in frame else 0
    return frame_html(frame, f"StepStats: {steps} steps")


# --- the constitution ---------------------------------------------------------------------------------
def cdna_frame(cdna: Any) -> pd.DataFrame:
    """One row per CDNA field: field, value, default, changed (differs from the dataclass default)."""
    rows = []
    for f in dataclasses.fields(cdna):
        value = getattr(cdna, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        changed = f.name not in ("name", "version") and value != default
        rows.append({"field": f.name, "value": _cell(value), "default": _cell(default), "changed": changed})
    return pd.DataFrame(rows, columns=["field", "value", "default", "changed"])


def cdna_html(cdna: Any) -> str:
    """A CDNA: every field with its default, the changed ones tinted; name, version and hash above."""
    frame = cdna_frame(cdna)
    caption = f"CDNA {cdna.name!r} v{cdna.version} (hash {cdna.hash}): {int(frame['changed'].sum())} changed"
    return frame_html(frame, caption, max_rows=len(frame), highlight=frame["changed"].tolist())


# --- the hierarchy ------------------------------------------------------------------------------------
def hierarchy_frame(hierarchy: Any) -> pd.DataFrame:
    """One row per token of every level (the ``Hierarchy``'s own ``to_pandas()``)."""
    return hierarchy.to_pandas()


def hierarchy_levels_frame(hierarchy: Any) -> pd.DataFrame:
    """One row per level: level, tokens, in_fields (tokens of the level inside a field of the level
    above), fields_above, mean and largest field size (members one level down)."""
    frame = hierarchy.to_pandas()
    rows = []
    levels = sorted(int(v) for v in frame["level"].unique()) if len(frame) else []
    for lv in levels:
        here = frame[frame["level"] == lv]
        above = frame[frame["level"] == lv + 1]
        rows.append(
            {
                "level": lv,
                "tokens": len(here),
                "in_fields": int((here["parent"] >= 0).sum()),
                "fields_above": len(above),
                "mean_field_size": float(above["size"].mean()) if len(above) else 0.0,
                "largest_field": int(above["size"].max()) if len(above) else 0,
            }
        )
    cols = ["level", "tokens", "in_fields", "fields_above", "mean_field_size", "largest_field"]
    return pd.DataFrame(rows, columns=cols)


def hierarchy_html(hierarchy: Any, *, top: int = 10) -> str:
    """A ``Hierarchy``: tokens per level, then the largest fields of each field level."""
    out = frame_html(
        hierarchy_levels_frame(hierarchy),
        f"Hierarchy at tick {int(getattr(hierarchy, 'tick', 0))}: tokens per level {list(hierarchy.sizes())}",
    )
    frame = hierarchy.to_pandas()
    drop = {"strength", "hits", "born"}  # the same for every field; the axes stay (centroids)
    for lv in sorted(int(v) for v in frame["level"].unique() if v >= 1) if len(frame) else []:
        fields = frame[frame["level"] == lv].sort_values("tokens", ascending=False)
        keep = [c for c in fields.columns if c not in drop]
        out += frame_html(fields[keep], f"level-{lv} fields, largest first", max_rows=top)
    return out


# --- the engine's status ------------------------------------------------------------------------------
def status_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """The engine's ``stats()`` as a two-column table: key, value."""
    return pd.DataFrame({"key": list(stats), "value": [_cell(v) for v in stats.values()]})


def status_html(stats: Mapping[str, Any], title: str = "engine status") -> str:
    """The engine's ``stats()`` as a key / value table."""
    return frame_html(status_frame(stats), title, max_rows=len(stats))


class Status(dict):  # type: ignore[type-arg]
    """The engine's ``stats()`` as a dict that shows itself as a table (``%neurograph status``).

    Args:
        stats: the mapping ``Engine.stats()`` returns.
        title: the caption of the table (e.g. the engine's ``repr``).
    """

    def __init__(self, stats: Mapping[str, Any], title: str = "engine status") -> None:
        super().__init__(stats)
        self.title = title

    def to_pandas(self) -> pd.DataFrame:
        """A two-column DataFrame: key, value."""
        return status_frame(self)

    def _repr_html_(self) -> str:
        return status_html(self, self.title)


# --- events -------------------------------------------------------------------------------------------
_EVENT_COLS = ["time", "channel", "event_type", "data"]


def events_frame(events: Iterable[Any], *, width: int = 160) -> pd.DataFrame:
    """Events (``neurograph.events.Event``) in the given order: time (local clock), channel,
    event_type and data (``key=value`` pairs, cut to ``width`` characters)."""
    rows = []
    for ev in events:
        data = ", ".join(f"{k}={_short(v)}" for k, v in _event_items(ev.data))
        rows.append(
            {
                "time": time.strftime("%H:%M:%S", time.localtime(ev.timestamp))
                + f".{int(ev.timestamp * 1000) % 1000:03d}",
                "channel": ev.channel,
                "event_type": ev.event_type,
                "data": data if len(data) <= width else data[: width - 1] + "…",
            }
        )
    return pd.DataFrame(rows, columns=_EVENT_COLS)


def events_html(events: Iterable[Any], caption: str, *, max_rows: int = MAX_ROWS) -> str:
    """Events as a table, oldest first (the newest at the bottom)."""
    frame = events_frame(events)
    return frame_html(frame, caption, max_rows=max_rows)


_FIRST = ("label", "token_id", "is_novel", "anomaly_score", "resonance")  # the keys a reader looks for


def _event_items(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """An event's data for one line: its ``meta`` flattened, the telling keys first, empty values out."""
    flat = dict(data)
    flat.update(flat.pop("meta", None) or {})
    first = [(k, flat[k]) for k in _FIRST if k in flat]
    rest = [
        (k, v) for k, v in flat.items() if k not in _FIRST and not (isinstance(v, (list, tuple)) and not v)
    ]
    return first + rest


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} items]" if len(value) > 4 else "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:4]) + "}"
    return str(value)
