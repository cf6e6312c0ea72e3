"""The emergent hierarchy: fields found as basins, nesting, mass sums, stable ids and lifecycle events."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score
from torch_geometric.data import Data
from torch_geometric.nn.pool import avg_pool_x

import neurograph as ng
from neurograph.datasets import blobs_8d
from neurograph.errors import QuotaExceeded, UnknownToken
from neurograph.hierarchy.basins import BasinGrouping, knn_graph
from neurograph.hierarchy.matching import match_fields
from neurograph.kernels import knn_reference
from neurograph.kinds import PART_OF

CHAT = "signal.input.external.text.chat"


def lifecycle_recorder(eng: ng.Engine) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    eng.subscribe("field.*", lambda e: events.append((e.event_type, dict(e.data))), channels=["status"])
    return events


def group(center: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (center + spread * rng.standard_normal((n, 8))).astype(np.float32)


def move(eng: ng.Engine, ids: np.ndarray, pos: np.ndarray) -> None:
    """Move tokens as the dynamics would (outside emit): positions written, the index invalidated."""
    eng.token_state.scatter("pos", eng.token_state.slots_of(ids), pos.astype(np.float32))
    eng.index.invalidate()


# --- recovery of well-separated blobs -------------------------------------------------------------------
def test_blobs_are_recovered_as_level1_fields(device):
    x, labels = blobs_8d(n=1200, centers=8, seed=1)
    eng = ng.Engine(device=device)
    ids = eng.add_tokens(x)
    h = eng.hierarchy()
    found = h.ancestors(ids, level=1)
    assert normalized_mutual_info_score(labels, found) >= 0.95
    assert (found >= 0).mean() > 0.95
    assert len(h.fields(1)) == 8


def test_blobs_streamed_through_emit_are_recovered():
    x, labels = blobs_8d(n=1500, centers=6, seed=2)
    eng = ng.Engine()
    b = eng.emit_batch(CHAT, x)  # novelty merges nearby signals: fewer, heavier tokens, learned links
    h = eng.hierarchy()
    found = h.ancestors(b.token_ids.numpy(), level=1)
    assert normalized_mutual_info_score(labels, found) >= 0.95


# --- nesting and mass --------------------------------------------------------------------------------
def test_every_parent_contains_its_children_and_weighs_their_sum():
    x, _ = blobs_8d(n=900, centers=9, spread=0.05, seed=3)
    eng = ng.Engine(cdna=ng.CDNA(max_levels=3, min_field_size=3))
    eng.emit_batch(CHAT, x, priorities=np.arange(900) % 256)
    eng.hierarchy()
    tokens = eng.tokens().set_index("id")
    assert tokens["level"].max() >= 2  # fields of fields formed
    child = tokens[tokens["parent"] >= 0]
    parent = tokens.loc[child["parent"]]
    assert len(child) > 0.9 * (tokens["level"] == 0).sum()
    assert (parent["level"].to_numpy() == child["level"].to_numpy() + 1).all()
    # containment: the child's ball lies inside the parent's ball (radius = extent)
    d = np.sqrt(((child[list(ng.AXES)].to_numpy() - parent[list(ng.AXES)].to_numpy()) ** 2).sum(1))
    assert (d + child["radius"].to_numpy() <= parent["radius"].to_numpy() * (1 + 1e-5) + 1e-6).all()
    # mass: the sum of the children's; position: their mass-weighted centroid
    mass = child.groupby("parent")["mass"].sum()
    np.testing.assert_allclose(tokens.loc[mass.index, "mass"].to_numpy(), mass.to_numpy(), rtol=1e-5)
    moment = (child[list(ng.AXES)] * child["mass"].to_numpy()[:, None]).groupby(child["parent"]).sum()
    np.testing.assert_allclose(
        tokens.loc[mass.index, list(ng.AXES)].to_numpy(),
        moment.to_numpy() / mass.to_numpy()[:, None],
        atol=1e-5,
    )


def test_fields_may_outweigh_mass_max_but_not_field_mass_max():
    x, _ = blobs_8d(n=400, centers=2, seed=4)
    eng = ng.Engine(cdna=ng.CDNA(mass_max=2.0, max_levels=1))
    eng.add_tokens(x, priorities=255)  # 1.5 each: a field of ~200 weighs ~300 > mass_max
    h = eng.hierarchy()
    f = h.fields(1)
    assert (f["mass"] > 2.0).all()
    np.testing.assert_allclose(f["mass"].sum(), 400 * 1.5, rtol=1e-5)


# --- identity and lifecycle ---------------------------------------------------------------------------
def test_ids_are_stable_when_nothing_moves():
    x, _ = blobs_8d(n=600, centers=5, seed=5)
    eng = ng.Engine()
    eng.emit_batch(CHAT, x)
    events = lifecycle_recorder(eng)
    first = eng.hierarchy().to_pandas()
    assert {t for t, _ in events} == {"field.born"}
    n_tokens, n_edges, next_id = eng.token_state.count, eng.edge_state.count, eng.token_state.next_id
    events.clear()
    second = eng.hierarchy().to_pandas()
    assert events == []
    pd.testing.assert_frame_equal(first, second)
    assert (eng.token_state.count, eng.edge_state.count, eng.token_state.next_id) == (
        n_tokens,
        n_edges,
        next_id,
    )


def two_groups(offset: float) -> tuple[ng.Engine, np.ndarray, np.ndarray]:
    a = group(np.full(8, -0.4), 60, 0.03, seed=0)
    b = group(np.full(8, -0.4 + offset), 60, 0.03, seed=1)
    eng = ng.Engine(cdna=ng.CDNA(max_levels=1))
    return eng, eng.add_tokens(a), eng.add_tokens(b)


def test_merge_scenario_publishes_field_merged():
    eng, ids_a, ids_b = two_groups(offset=0.5)
    h = eng.hierarchy()
    fa, fb = h.parent(int(ids_a[0])), h.parent(int(ids_b[0]))
    assert fa is not None and fb is not None and fa != fb
    events = lifecycle_recorder(eng)
    pos_a = eng.token_state.gather("pos", eng.token_state.slots_of(ids_a))
    move(eng, ids_b, group(pos_a.mean(0), 60, 0.03, seed=2))  # b drifts onto a
    h = eng.hierarchy()
    assert [t for t, _ in events] == ["field.merged"]
    data = events[0][1]
    assert sorted(data["merged"]) == sorted([fa, fb]) and data["id"] in (fa, fb) and data["level"] == 1
    assert h.parent(int(ids_a[0])) == h.parent(int(ids_b[0])) == data["id"]
    gone = ({fa, fb} - {data["id"]}).pop()
    assert eng.token_state.slots_of([gone])[0] == -1  # the absorbed field's token is dead
    assert len(h.fields(1)) == 1


def test_split_scenario_publishes_field_split():
    eng, ids_a, ids_b = two_groups(offset=0.0)  # one group of 120
    h = eng.hierarchy()
    field = h.parent(int(ids_a[0]))
    assert field is not None and h.parent(int(ids_b[0])) == field and len(h.fields(1)) == 1
    events = lifecycle_recorder(eng)
    move(eng, ids_b, group(np.full(8, 0.4), 60, 0.03, seed=3))  # half of it drifts away
    h = eng.hierarchy()
    assert [t for t, _ in events] == ["field.split"]
    data = events[0][1]
    assert data["id"] == field and field in data["parts"] and len(data["parts"]) == 2
    assert sorted(data["sizes"]) == [60, 60]
    assert {h.parent(int(ids_a[0])), h.parent(int(ids_b[0]))} == set(data["parts"])


def test_born_and_died():
    eng, ids_a, _ = two_groups(offset=0.8)
    events = lifecycle_recorder(eng)
    h = eng.hierarchy()
    assert [t for t, _ in events] == ["field.born", "field.born"]
    born = {d["id"] for _, d in events}
    assert born == set(h.fields(1)["id"])
    events.clear()
    eng.update_cdna(min_field_size=100)  # no group is large enough any more
    h = eng.hierarchy()
    assert sorted(t for t, _ in events) == ["field.died", "field.died"]
    assert {d["id"] for _, d in events} == born
    assert len(h.fields(1)) == 0 and h.parent(int(ids_a[0])) is None
    assert not (eng.edges()["kind"] == PART_OF).any()  # their part_of edges went with them


def test_lowering_max_levels_kills_the_levels_above():
    x, _ = blobs_8d(n=400, centers=6, seed=11)
    eng = ng.Engine(cdna=ng.CDNA(min_field_size=3))
    eng.add_tokens(x)
    assert eng.hierarchy().sizes() == [400, 6, 1]
    events = lifecycle_recorder(eng)
    eng.update_cdna(max_levels=1)
    assert eng.hierarchy().sizes() == [400, 6] and [t for t, _ in events] == ["field.died"]
    eng.update_cdna(max_levels=0)
    h = eng.hierarchy()
    assert h.sizes() == [400] and (eng.tokens()["parent"] == -1).all() and eng.edges().empty


def test_match_fields_rules():
    # old fields 0 (4 members) and 1 (4 members); new groups: 0 = all of both (merge), 1 = newcomers
    group_of = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    old_of = np.array([0, 0, 0, 0, 1, 1, 1, -1, -1, -1, -1])
    m = match_fields(group_of, old_of, 2, np.array([4, 4]))
    assert m.inherit.tolist() == [0, -1]  # old 0 shares 4 (> old 1's 3), so group 0 keeps its id
    assert m.merged == ((0, (0, 1)),) and m.born.tolist() == [1] and m.absorbed.tolist() == [1]
    assert m.died.size == 0 and m.split == ()
    # a small overlap is no link: 1 of 10 members
    m = match_fields(np.array([0] * 10), np.array([0] + [-1] * 9), 1, np.array([10]))
    assert m.inherit.tolist() == [-1] and m.died.tolist() == [0] and m.born.tolist() == [0]


# --- grouping method --------------------------------------------------------------------------------
def test_strong_links_join_basins():
    a = group(np.full(8, -0.5), 30, 0.02, seed=0)
    b = group(np.full(8, 0.5), 30, 0.02, seed=1)
    pos = torch.from_numpy(np.concatenate([a, b]))
    mass = torch.ones(60)
    grouping = BasinGrouping(k=8, persistence=1.0, min_size=5)
    assert grouping(pos, mass).n_fields == 2
    links = torch.tensor([[i for i in range(30)], [30 + i for i in range(30)]])  # every a linked to a b
    joined = grouping(pos, mass, links=links)
    assert joined.n_fields == 1 and (joined.cluster == 0).all()


def test_persistence_sets_the_granularity():
    uniform = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (600, 8)).astype(np.float32))
    counts = [
        BasinGrouping(persistence=p, min_size=1)(uniform, torch.ones(600)).n_fields for p in (0.0, 0.3, 1.0)
    ]
    assert counts[0] > counts[1] > counts[2] == 1  # raw basins; fewer; structureless noise is one field
    x, _ = blobs_8d(n=800, centers=8, seed=6)  # separated groups stay apart whatever the persistence
    assert BasinGrouping(persistence=1e9)(torch.from_numpy(x), torch.ones(800)).n_fields == 8


def test_knn_graph_matches_the_torch_reference():
    x = torch.from_numpy(blobs_8d(n=300, seed=7)[0])
    scale = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    idx, dist = knn_graph(x, 10, scale)
    ref_d, ref_i = knn_reference(x, x, 10, math.inf, scale, exclude=torch.arange(300))
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(dist, ref_d, rtol=1e-5, atol=1e-6)


# --- the snapshot ------------------------------------------------------------------------------------
def test_hierarchy_views():
    x, _ = blobs_8d(n=500, centers=4, seed=8)
    eng = ng.Engine(cdna=ng.CDNA(min_field_size=3))
    b = eng.emit_batch(CHAT, x)
    h = eng.hierarchy()
    assert isinstance(h.levels[0], Data) and h.n_levels == len(h.sizes()) == 3
    assert repr(h).startswith("Hierarchy(tick=500")
    lv0, lv1 = h.levels[0], h.levels[1]
    assert lv0.edge_index.shape[1] > 0 and lv0.cluster.shape == (lv0.num_nodes,)
    inside = lv0.cluster >= 0
    pooled, _ = avg_pool_x(
        lv0.cluster[inside], lv0.pos[inside], torch.zeros(int(inside.sum()), dtype=torch.long)
    )
    assert pooled.shape == (lv1.num_nodes, 8)
    tid = int(b.token_ids[0])
    path = h.path(tid)
    assert path[0] == tid and len(path) == 3 and h.parent(path[-1]) is None
    assert tid in h.children(path[1]) and path[1] in h.children(path[2])
    assert h.level_of(path[2]) == 2
    frame = h.to_pandas()
    assert len(frame) == sum(h.sizes()) and {"id", "level", "parent", "size", "tokens", "mass"} <= set(frame)
    f1 = h.fields(1)
    assert f1["tokens"].sum() == int(inside.sum()) and (f1["size"] >= eng.cdna.min_field_size).all()
    g = h.to_networkx()
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == len(frame)
    assert g.number_of_edges() == int((frame["parent"] >= 0).sum())
    assert nx.is_forest(g.to_undirected())
    with pytest.raises(UnknownToken):
        h.parent(10**9)
    assert eng.hierarchy(rebuild=False).sizes() == h.sizes()


def test_quota_refusal_changes_nothing():
    x, _ = blobs_8d(n=300, centers=3, seed=9)
    eng = ng.Engine(cdna=ng.CDNA(max_tokens=302))
    eng.add_tokens(x)
    before = (eng.tokens(), eng.edges())
    with pytest.raises(QuotaExceeded):
        eng.hierarchy()  # 3 level-1 fields and a root would make 304 tokens
    pd.testing.assert_frame_equal(before[0], eng.tokens())
    pd.testing.assert_frame_equal(before[1], eng.edges())


def test_empty_and_tiny_engines():
    eng = ng.Engine()
    assert eng.hierarchy().sizes() == [0]
    eng.add_tokens(np.zeros((3, 8)))
    h = eng.hierarchy()
    assert h.sizes() == [3] and h.parent(0) is None and h.fields(1).empty


def test_hierarchy_every_rebuilds_after_that_many_steps():
    x, _ = blobs_8d(n=200, centers=2, seed=10)
    eng = ng.Engine(hierarchy_every=10)
    eng.add_tokens(x)
    eng._hierarchy_after_steps(9)  # the dynamics call this after each step(n)
    assert eng.hierarchy(rebuild=False).sizes() == [200]
    eng._hierarchy_after_steps(1)
    assert eng.hierarchy(rebuild=False).sizes()[1] == 2
    with pytest.raises(ValueError, match="hierarchy_every"):
        ng.Engine(hierarchy_every=0)
    full = ng.Engine(cdna=ng.CDNA(max_tokens=200), hierarchy_every=1)
    full.add_tokens(x)
    full._hierarchy_after_steps(1)  # a refused periodic rebuild is skipped, the dynamics go on
    assert full.hierarchy(rebuild=False).sizes() == [200] and full.guardian.quota_refusals == 1


@pytest.mark.slow
def test_rebuilds_and_upkeep_are_replayed_from_the_log(tmp_path):
    """A process dies without a snapshot after a rebuild: reopening replays it, so ids come out the same."""
    store = tmp_path / "store"
    code = f"""
import json, os
import neurograph as ng
from neurograph.datasets import blobs_8d
x, _ = blobs_8d(n=300, centers=3, seed=0)
eng = ng.Engine(path={str(store)!r})
eng.emit_batch({CHAT!r}, x[:200])
eng.hierarchy()
eng.learn()
b = eng.emit_batch({CHAT!r}, x[200:])
h = eng.hierarchy(rebuild=False)
out = {{"fields": h.fields(1)["id"].tolist(), "ids": b.token_ids.tolist(), "next": eng.token_state.next_id}}
print(json.dumps(out))
os._exit(0)  # no close(), no snapshot
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    ref = json.loads(out.stdout.strip().splitlines()[-1])
    eng = ng.Engine.open(store)
    h = eng.hierarchy(rebuild=False)
    assert h.fields(1)["id"].tolist() == ref["fields"] and len(ref["fields"]) == 3
    assert eng.token_state.next_id == ref["next"]
    assert h.levels[0].ids.tolist()[-1] == max(ref["ids"])
    eng.close()
