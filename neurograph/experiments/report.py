"""``report.html``: one self-contained page of plotly figures for a run (plotly is imported here only).

:func:`figures` draws, from what the run kept:

- ``Token space by field``: the level-0 tokens projected to 2-D (PCA of their 8-D positions), coloured
  by their level-1 field;
- ``Token space by label``: the same points coloured by the majority label of the signals each absorbed;
- ``Energy over the stream``: potential, kinetic and total energy after each batch's dynamics;
- ``Novelty rate over the stream``: the share of each batch that became new tokens;
- ``Hierarchy``: a sunburst of the fields of fields (area: level-0 tokens below);
- ``Metrics against the baselines``: NMI, ARI, purity, coverage of the engine's fields and each baseline.

:func:`write_report` puts them in one HTML page under an ``<h2>`` with each title (so the page reads, and
parses, without running its scripts); with ``plotlyjs="inline"`` plotly.js is embedded and the page
opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurograph.space import AXES

__all__ = ["TITLES", "figures", "write_report"]

TITLES = (
    "Token space by field",
    "Token space by label",
    "Energy over the stream",
    "Novelty rate over the stream",
    "Hierarchy",
    "Metrics against the baselines",
)


def _project_2d(pos: np.ndarray) -> np.ndarray:
    """``[n, 8] -> [n, 2]`` by PCA (the first two principal directions; zeros when n < 2)."""
    if len(pos) < 2:
        return np.zeros((len(pos), 2))
    z = pos - pos.mean(0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)  # vt (8, 8)
    return z @ vt[:2].T  # (n, 2)


def _sunburst_frame(tree: pd.DataFrame) -> pd.DataFrame:
    """ids / parents / values of the fields (level >= 1) of a Hierarchy.to_pandas() frame."""
    fields = tree[tree["level"] >= 1]
    ids = "L" + fields["level"].astype(str) + ":" + fields["id"].astype(str)
    parent_level = fields["level"] + 1
    parents = np.where(
        fields["parent"] >= 0, "L" + parent_level.astype(str) + ":" + fields["parent"].astype(str), ""
    )
    return pd.DataFrame({"ids": ids.to_numpy(), "parents": parents, "values": fields["tokens"].to_numpy()})


def figures(
    tokens: pd.DataFrame,
    field_of_token: np.ndarray,
    label_of_token: np.ndarray | None,
    tree: pd.DataFrame,
    curve: Sequence[Mapping[str, Any]],
    table: pd.DataFrame,
    max_points: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's figures by title (module docstring).

    Args:
        tokens: the level-0 tokens (``id`` and one column per axis), ``n`` rows.
        field_of_token: ``[n]`` level-1 field id of each token (-1 none).
        label_of_token: ``[n]`` majority label of the signals absorbed by each token, or ``None``.
        tree: ``Hierarchy.to_pandas()`` (every level).
        curve: one mapping per batch (``signals``, ``novel_rate``, ``potential``, ``kinetic``,
            ``total_energy``).
        table: the metrics table (``method``, ``nmi``, ``ari``, ``purity``, ``coverage``, ``clusters``).
        max_points: tokens drawn at most (a seeded subsample).
        seed: seed of the subsample.
    """
    import plotly.express as px
    import plotly.graph_objects as go

    n = len(tokens)
    keep = np.arange(n)
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    xy = _project_2d(tokens[list(AXES)].to_numpy(np.float64)[keep])
    frame = pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "id": tokens["id"].to_numpy()[keep]})
    frame["field"] = np.where(field_of_token[keep] >= 0, field_of_token[keep].astype(str), "none")
    frame["label"] = label_of_token[keep].astype(str) if label_of_token is not None else "unlabelled"
    figs: dict[str, Any] = {}
    for title, colour in ((TITLES[0], "field"), (TITLES[1], "label")):
        fig = px.scatter(frame, x="pc1", y="pc2", color=colour, hover_data=["id"], title=title)
        fig.update_traces(marker={"size": 4})
        fig.update_layout(showlegend=frame[colour].nunique() <= 30)
        figs[title] = fig
    c = pd.DataFrame(list(curve))
    energy = go.Figure(
        layout={"title": TITLES[2], "xaxis_title": "signals streamed", "yaxis_title": "energy"}
    )
    for key in ("potential", "kinetic", "total_energy"):
        if key in c and c[key].notna().any():
            energy.add_scatter(x=c["signals"], y=c[key], mode="lines+markers", name=key)
    figs[TITLES[2]] = energy
    novelty = go.Figure(
        layout={"title": TITLES[3], "xaxis_title": "signals streamed", "yaxis_title": "novel"}
    )
    if "novel_rate" in c:
        novelty.add_scatter(x=c["signals"], y=c["novel_rate"], mode="lines+markers", name="novel rate")
    figs[TITLES[3]] = novelty
    sb = _sunburst_frame(tree)
    figs[TITLES[4]] = go.Figure(
        go.Sunburst(ids=sb["ids"], parents=sb["parents"], values=sb["values"], branchvalues="total"),
        layout={"title": TITLES[4]},
    )
    cols = [c for c in ("method", "clusters", "coverage", "nmi", "ari", "purity", "seconds") if c in table]
    cells = [[f"{v:.3f}" if isinstance(v, float) else v for v in table[c]] for c in cols]
    figs[TITLES[5]] = go.Figure(
        go.Table(header={"values": cols}, cells={"values": cells}), layout={"title": TITLES[5]}
    )
    return figs


def write_report(
    path: Path,
    figs: Mapping[str, Any],
    title: str,
    summary: Mapping[str, Any],
    plotlyjs: str = "inline",
    *,
    tables: Mapping[str, Any] | None = None,
) -> Path:
    """Write the figures into one HTML page (module docstring) and return its path; ``tables`` (name ->
    DataFrame) follow the summary as escaped HTML tables."""
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table>",
        *(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in summary.items()
        ),
        "</table>",
    ]
    for name, frame in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.2f}"))
    for i, (name, fig) in enumerate(figs.items()):
        include: Any = (True if plotlyjs == "inline" else "cdn") if i == 0 else False
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=include))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
