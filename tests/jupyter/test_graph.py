"""``draw_graph``: networkx layouts, edges as one trace, sizes by mass, colours by field, size limits."""

from __future__ import annotations

import numpy as np
import pytest

import neurograph as ng

pytest.importorskip("plotly", reason="the jupyter extra is not installed (pip install -e .[jupyter])")

from neurograph.jupyter import draw_graph
from neurograph.jupyter.graph import LAYOUT_LIMITS

CHAT = "signal.input.external.text.chat"


def segments(fig: object) -> int:
    """Edges drawn in the edge trace (x, y, gap per edge)."""
    xs = fig.data[0].x  # type: ignore[attr-defined]
    assert len(xs) % 3 == 0 and all(x is None for x in xs[2::3])
    return len(xs) // 3


@pytest.mark.parametrize("layout", ["spring", "circular", "kamada_kawai", "projection"])
def test_layouts_draw_every_token_and_learned_edge(engine: ng.Engine, layout: str) -> None:
    tokens = engine.tokens().query("level == 0")
    edges = engine.edges().query("relation != 'structural'")
    fig = draw_graph(engine, layout=layout)
    assert [t.name for t in fig.data] == ["edges", "tokens"]  # all edges in one trace
    nodes = fig.data[1]
    assert len(nodes.x) == len(tokens) and np.isfinite(np.asarray(nodes.x, float)).all()
    assert segments(fig) == len(edges)
    sizes = np.asarray(nodes.marker.size)
    heavy, light = tokens["mass"].to_numpy().argmax(), tokens["mass"].to_numpy().argmin()
    assert sizes[heavy] >= sizes[light]  # sized by mass
    colours = np.asarray(nodes.marker.color)
    parent = tokens["parent"].to_numpy()
    for field in np.unique(parent[parent >= 0]):  # one colour per field
        assert len(set(colours[parent == field])) == 1
    assert f"{layout} layout" in fig.layout.title.text


def test_projection_on_two_axes_places_tokens_at_their_coordinates(engine: ng.Engine) -> None:
    tokens = engine.tokens().query("level == 0")
    fig = draw_graph(engine, layout="projection", axes=("motor", "social"))
    np.testing.assert_allclose(fig.data[1].x, tokens["motor"], rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, tokens["social"], rtol=1e-6)
    with pytest.raises(ng.NeurographError, match="names must be among"):
        draw_graph(engine, layout="projection", axes=("motor", "colour"))


def test_a_hierarchy_with_all_levels_draws_part_of_arcs(engine: ng.Engine) -> None:
    h = engine.hierarchy(rebuild=False)
    frame = h.to_pandas()
    fig = draw_graph(h, layout="spring", levels=None)
    assert len(fig.data[1].x) == len(frame)
    coarsened = sum(int(lv.edge_index.shape[1]) for lv in h.levels)
    assert segments(fig) == coarsened + int((frame["parent"] >= 0).sum())
    only_fields = draw_graph(h, layout="circular", levels=[1])
    assert len(only_fields.data[1].x) == h.sizes()[1]


def test_a_layout_past_its_size_is_refused_with_a_pointer_to_the_projection(engine: ng.Engine) -> None:
    n = len(engine.tokens().query("level == 0"))
    with pytest.raises(
        ng.NeurographError, match=r"kamada_kawai layout of \d+ nodes is too slow.*layout='projection'"
    ):
        draw_graph(engine, layout="kamada_kawai", max_nodes=n - 1)
    assert LAYOUT_LIMITS["kamada_kawai"] < LAYOUT_LIMITS["spring"] < LAYOUT_LIMITS["circular"]
    big = ng.Engine(seed=0)
    big.add_tokens(np.random.default_rng(0).uniform(-1, 1, (LAYOUT_LIMITS["spring"] + 1, 8)))
    with pytest.raises(ng.NeurographError, match="spring layout of 3,001 nodes is too slow"):
        draw_graph(big, layout="spring")
    assert len(draw_graph(big, layout="projection").data[1].x) == LAYOUT_LIMITS["spring"] + 1
    with pytest.raises(ng.NeurographError, match="must be one of spring"):
        draw_graph(engine, layout="hairball")
    with pytest.raises(ng.NeurographError, match="must be an Engine or a Hierarchy"):
        draw_graph([1, 2, 3])  # type: ignore[arg-type]
