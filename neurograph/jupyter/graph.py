"""``draw_graph``: tokens and their links as a plotly figure, laid out by networkx.

Nodes are tokens, sized by mass and coloured by field (a level-0 token takes the colour of its level-1
field, grey outside any; a field its own); edges are drawn as **one** line trace (segments separated by
gaps), learned edges between the drawn tokens plus the ``part_of`` arcs from a token to its field when
several levels are drawn. Layouts are networkx's: ``spring`` (Fruchterman-Reingold, weighted by the edge
weight, seeded), ``circular`` and ``kamada_kawai``; ``projection`` places each token at two of its 8
coordinates (or its first two principal components) and draws any number of tokens.

A layout is refused past the size where it stops being interactive on a laptop CPU
(:data:`LAYOUT_LIMITS`: spring 3,000 nodes, kamada_kawai 500, circular 20,000) with an error that
suggests the 2-D projection; ``max_nodes=`` raises the limit for one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from neurograph.engine import Engine
from neurograph.errors import InvalidArgument
from neurograph.hierarchy.view import Hierarchy
from neurograph.space import AXES

__all__ = ["LAYOUTS", "LAYOUT_LIMITS", "draw_graph"]

LAYOUT_LIMITS = {"spring": 3_000, "kamada_kawai": 500, "circular": 20_000}  # nodes; O(n^2) per iteration
LAYOUTS = (*LAYOUT_LIMITS, "projection")
_PALETTE = np.array(
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
)
_NO_FIELD = "#c7c7c7"


def draw_graph(
    source: Engine | Hierarchy,
    layout: str = "spring",
    *,
    levels: int | list[int] | None = 0,
    axes: tuple[str, str] | None = None,
    max_nodes: int | None = None,
    seed: int = 0,
    title: str | None = None,
    height: int = 520,
) -> Any:
    """Draw tokens and edges as a plotly figure.

    Args:
        source: an :class:`~neurograph.Engine` (tokens and learned edges of its current state) or a
            :class:`~neurograph.hierarchy.view.Hierarchy` (its tokens, the learned edges of each level as
            it coarsened them, and ``part_of`` arcs).
        layout: ``"spring"``, ``"circular"``, ``"kamada_kawai"`` or ``"projection"``.
        levels: the token levels drawn: one level, a list, or ``None`` for all.
        axes: for ``"projection"``, two axis names (default: the first two principal components).
        max_nodes: the most nodes the layout accepts (default :data:`LAYOUT_LIMITS`).
        seed: seed of the spring layout.
        title: the figure's title (default: what was drawn).
        height: in pixels.

    Returns:
        A ``plotly.graph_objects.Figure``: trace 0 the edges (one trace), trace 1 the tokens.

    Raises:
        InvalidArgument: an unknown layout or axis, or more nodes than the layout handles (the message
            suggests ``layout="projection"``).
    """
    if layout not in LAYOUTS:
        raise InvalidArgument("layout", layout, f"must be one of {', '.join(LAYOUTS)}")
    nodes, edges = _graph_frames(source)
    if levels is not None:
        wanted = [levels] if isinstance(levels, int) else list(levels)
        nodes = nodes[nodes["level"].isin(wanted)].reset_index(drop=True)
    n = len(nodes)
    limit = LAYOUT_LIMITS.get(layout) if max_nodes is None else int(max_nodes)
    if layout != "projection" and limit is not None and n > limit:
        raise InvalidArgument(
            "layout",
            layout,
            f"the {layout} layout of {n:,} nodes is too slow (the limit is {limit:,}); draw the 2-D "
            f"projection instead: draw_graph(..., layout='projection') or the Dashboard's token space, "
            f"pick fewer levels, or pass max_nodes= to wait anyway",
        )
    ids = nodes["id"].to_numpy()
    keep = np.isin(edges["source"].to_numpy(), ids) & np.isin(edges["target"].to_numpy(), ids)
    edges = edges[keep].reset_index(drop=True)
    xy = _layout(nodes, edges, layout, axes, seed)  # (n, 2)
    return _figure(nodes, edges, xy, layout, axes, title, height)


def _graph_frames(source: Engine | Hierarchy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (id, level, parent, mass, axes) and edges (source, target, weight, kind) of the source."""
    if isinstance(source, Engine):
        nodes = source.tokens()[["id", "level", "parent", "mass", *AXES]]
        e = source.edges()
        learned = e[e["relation"] != "structural"]
        edges = pd.DataFrame(
            {
                "source": learned["source"].to_numpy(),
                "target": learned["target"].to_numpy(),
                "weight": learned["weight"].to_numpy(np.float64),
                "kind": "learned",
            }
        )
    elif isinstance(source, Hierarchy):
        nodes = source.to_pandas()[["id", "level", "parent", "mass", *AXES]]
        parts = []
        for data in source.levels:  # each level's edges, as the hierarchy coarsened them
            ids = data.ids.numpy()
            ei = data.edge_index.numpy()
            if ei.shape[1]:
                parts.append(
                    pd.DataFrame(
                        {
                            "source": ids[ei[0]],
                            "target": ids[ei[1]],
                            "weight": data.edge_weight.numpy().astype(np.float64),
                            "kind": "learned",
                        }
                    )
                )
        edges = pd.concat(parts, ignore_index=True) if parts else _no_edges()
    else:
        raise InvalidArgument("source", type(source).__name__, "must be an Engine or a Hierarchy")
    has_parent = nodes["parent"].to_numpy() >= 0
    part_of = pd.DataFrame(
        {
            "source": nodes["id"].to_numpy()[has_parent],
            "target": nodes["parent"].to_numpy()[has_parent],
            "weight": 1.0,
            "kind": "part_of",
        }
    )
    return nodes.reset_index(drop=True), pd.concat([edges, part_of], ignore_index=True)


def _no_edges() -> pd.DataFrame:
    return pd.DataFrame({"source": [], "target": [], "weight": [], "kind": []}).astype(
        {"source": np.int64, "target": np.int64, "weight": np.float64}
    )


def _layout(
    nodes: pd.DataFrame, edges: pd.DataFrame, layout: str, axes: tuple[str, str] | None, seed: int
) -> np.ndarray:
    """Node positions ``[n, 2]`` in the order of ``nodes``."""
    n = len(nodes)
    if n == 0:
        return np.zeros((0, 2))
    if layout == "projection":
        pos = nodes[list(AXES)].to_numpy(np.float64)
        if axes is not None:
            for a in axes:
                if a not in AXES:
                    raise InvalidArgument("axes", axes, f"names must be among {', '.join(AXES)}")
            return pos[:, [AXES.index(axes[0]), AXES.index(axes[1])]]
        centred = pos - pos.mean(0)
        if n < 2:
            return centred[:, :2]
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T
    import networkx as nx

    g = nx.Graph()
    ids = nodes["id"].tolist()
    g.add_nodes_from(ids)
    g.add_weighted_edges_from(
        zip(edges["source"].tolist(), edges["target"].tolist(), np.maximum(edges["weight"], 1e-6).tolist())
    )
    if layout == "spring":
        where = nx.spring_layout(g, seed=seed, weight="weight")
    elif layout == "circular":
        where = nx.circular_layout(g)
    else:
        where = nx.kamada_kawai_layout(g, weight=None)
    return np.array([where[i] for i in ids], dtype=np.float64).reshape(n, 2)


def _figure(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    xy: np.ndarray,
    layout: str,
    axes: tuple[str, str] | None,
    title: str | None,
    height: int,
) -> Any:
    import plotly.graph_objects as go

    row = {tid: i for i, tid in enumerate(nodes["id"].tolist())}
    seg_x: list[float | None] = []
    seg_y: list[float | None] = []
    for s, t in zip(edges["source"].tolist(), edges["target"].tolist()):
        a, b = row[s], row[t]
        seg_x += [xy[a, 0], xy[b, 0], None]
        seg_y += [xy[a, 1], xy[b, 1], None]
    level = nodes["level"].to_numpy()
    parent = nodes["parent"].to_numpy()
    ids = nodes["id"].to_numpy()
    field = np.where(level >= 1, ids, parent)  # the field a node is coloured by
    colour = np.where(field >= 0, _PALETTE[np.abs(field) % len(_PALETTE)], _NO_FIELD)
    size = np.clip(5 + 3 * np.sqrt(nodes["mass"].to_numpy(np.float64)), 5, 40)
    text = [
        f"token {i} · level {lv} · field {p if p >= 0 else '-'} · mass {m:.3g}"
        for i, lv, p, m in zip(ids.tolist(), level.tolist(), parent.tolist(), nodes["mass"].tolist())
    ]
    fig = go.Figure(
        [
            go.Scatter(
                x=seg_x,
                y=seg_y,
                mode="lines",
                line={"width": 0.6, "color": "#999"},
                hoverinfo="skip",
                name="edges",
            ),
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                marker={"size": size, "color": colour, "line": {"width": 0.5, "color": "#333"}},
                text=text,
                hoverinfo="text",
                name="tokens",
            ),
        ]
    )
    what = f"{len(nodes):,} tokens, {len(edges):,} edges, {layout} layout"
    if layout == "projection":
        what += f" ({axes[0]} × {axes[1]})" if axes else " (PCA)"
    fig.update_layout(
        title=title or what,
        showlegend=False,
        template="plotly_white",
        height=height,
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
    )
    if layout != "projection":
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False, scaleanchor="x")
    return fig
