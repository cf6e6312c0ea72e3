"""The persistence diagram of a level (parallel rounds against the sequential union-find), the threshold
rules, the cut, and the exactness of the faster paths (leaf-order kNN, coarsened rounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

import neurograph as ng
from neurograph.datasets import nested_groups
from neurograph.hierarchy.basins import BasinGrouping, _neighbourhood, _total_order, edge_saddles, knn_graph
from neurograph.hierarchy.persistence import cut, persistence_pairs, persistence_pairs_reference, threshold
from neurograph.neighbors import knn_arrays

CHAT = "signal.input.external.text.chat"


def path_graph(phi: list[float]) -> tuple[torch.Tensor, ...]:
    """A path 0 - 1 - ... - n-1 with the plain ToMATo saddles ``min(phi_i, phi_{i+1})``."""
    p = torch.tensor(phi, dtype=torch.float64)
    a = torch.arange(len(phi) - 1)
    src, dst = torch.cat([a, a + 1]), torch.cat([a + 1, a])
    return _total_order(p), src, dst, torch.minimum(p[src], p[dst]), p


def test_a_hand_checked_diagram() -> None:
    # heights along a path: peaks 5 (row 1), 4 (row 3), 3 (row 5); valleys 2 (row 2) and 0 (row 4)
    order, src, dst, w, phi = path_graph([1.0, 5.0, 2.0, 4.0, 0.0, 3.0])
    death, into, rounds = persistence_pairs(order, src, dst, w)
    pers = (phi - death).tolist()
    assert death[1] == math.inf and into[1] == -1  # the highest peak never dies
    assert pers[3] == 2.0 and into[3] == 2  # 4 meets the higher 5 at the valley 2: persistence 2
    assert pers[5] == 3.0 and into[5] == 4  # 3 meets them at 0: persistence 3
    assert pers[0] == pers[2] == pers[4] == 0.0  # no peaks: they climb to a neighbour
    assert into[0] == 1 and into[2] == 1 and into[4] == 3  # the highest neighbour
    assert rounds >= 2
    # the cut: tau 2.5 keeps 5 and 3 (row 5) and merges 4 (row 3) into 5; tau 3.5 keeps only 5; tau 0 all
    assert cut(death, into, phi, 2.5).tolist() == [1, 1, 1, 1, 1, 5]
    assert cut(death, into, phi, 3.5).tolist() == [1] * 6
    assert cut(death, into, phi, 0.0).tolist() == [1, 1, 1, 3, 3, 5]
    # a basin too small to be a field joins the one it meets at its death
    assert cut(death, into, phi, 0.0, min_size=2).tolist() == [1, 1, 1, 3, 3, 3]
    assert cut(death, into, phi, 0.0, min_size=3).tolist() == [1] * 6


def test_the_threshold_rules() -> None:
    t = lambda values, rule="gap", floor=1.0: threshold(torch.tensor(values), rule, floor)  # noqa: E731
    assert t([0.2, 3.0, 9.0], rule="fixed") == 1.0  # fixed: the floor whatever the diagram
    assert t([]) == 1.0  # nothing finite: the floor
    assert t([3.0]) == 1.5 and t([0.4]) == 1.0  # one value v: max(floor, v / 2), v stands iff v >= floor
    assert t([2.0, 3.0]) == 1.0  # gaps 2 (0..2) and 1: below the floor, both stand
    assert t([2.0, 6.0]) == 4.0  # gaps 2 and 4: the middle of 2..6, only 6 stands
    assert t([0.1, 0.2, 0.3, 5.0, 5.5]) == pytest.approx(2.65)  # noise | two prominent peaks
    assert t([0.25, 0.5, 0.75], floor=0.0) == 0.125  # even gaps: the lowest one
    with pytest.raises(ValueError, match="field_persistence_rule"):
        t([1.0], rule="widest")


@pytest.mark.parametrize("seed", range(6))
def test_rounds_match_the_sequential_union_find(seed: int) -> None:
    # a random graph with every edge strictly below both ends (no ties): deaths and partners agree exactly
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    a, b = rng.integers(0, n, 4 * n), rng.integers(0, n, 4 * n)
    a, b = a[a != b], b[a != b]
    phi = rng.normal(size=n)
    w = np.minimum(phi[a], phi[b]) - rng.exponential(0.5, a.size)
    order = np.argsort(np.argsort(phi, kind="stable"), kind="stable")
    src, dst, ww = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([w, w])
    d0, i0 = persistence_pairs_reference(order, src, dst, ww)
    d1, i1, _ = persistence_pairs(*(torch.from_numpy(v) for v in (order, src, dst, ww)))
    np.testing.assert_array_equal(d1.numpy(), d0)
    np.testing.assert_array_equal(i1.numpy(), i0)


def test_rounds_match_the_union_find_on_a_knn_graph_with_ties() -> None:
    # a kNN graph of clustered points: many edges at the same height (a vertex's own); deaths agree
    x, _ = nested_groups((3, 4), n=2000, seed=3)
    pos = torch.from_numpy(x)
    idx, dist = knn_graph(pos, 16, torch.ones(8))
    _, r = _neighbourhood(torch.ones(2000), idx, dist)
    phi = BasinGrouping()(pos, torch.ones(2000)).phi
    order = _total_order(phi)
    src, dst, w = edge_saddles(idx, dist, r, phi)
    d0, _ = persistence_pairs_reference(order.numpy(), src.numpy(), dst.numpy(), w.numpy())
    d1, _, _ = persistence_pairs(order, src, dst, w)
    np.testing.assert_array_equal(d1.numpy(), d0.astype(np.float32))


def test_leaf_order_knn_graph_is_the_plain_one() -> None:
    # large enough for the leaf-order path; no exact ties: the same neighbours in the same order
    x = np.random.default_rng(4).normal(size=(6000, 8)).astype(np.float32)
    scale = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    idx, dist = knn_graph(torch.from_numpy(x), 16, scale)
    xs = x.astype(np.float64) * np.sqrt(scale.double().numpy())
    ref_i, ref_d = knn_arrays(xs, xs, 16, math.inf, exclude_self=True)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_array_equal(dist.numpy(), ref_d.astype(np.float32))


def test_grouping_reports_its_diagram_and_threshold() -> None:
    x, labels = nested_groups((4, 5), n=1500, seed=0)
    pos, mass = torch.from_numpy(x), torch.ones(1500)
    fixed = BasinGrouping()(pos, mass)
    assert fixed.threshold == 1.0 and (fixed.diagram() < 1.0).all()  # the sub-groups are disconnected
    assert torch.isinf(fixed.persistence).sum() >= 20  # one top per connected component
    assert nmi(labels[:, 1], fixed.cluster.numpy()) > 0.95
    gap = BasinGrouping(rule="gap", persistence=0.0)(pos, mass)  # no floor: the widest gap alone
    torch.testing.assert_close(gap.persistence, fixed.persistence)  # the diagram does not depend on tau
    assert gap.threshold == threshold(fixed.diagram(), "gap", 0.0) < 1.0
    assert gap.n_fields >= fixed.n_fields  # a lower threshold: at least as many fields
    with pytest.raises(ValueError, match="rule"):
        BasinGrouping(rule="widest")


def test_groups_of_groups_that_touch_stay_apart_at_level_2() -> None:
    # seed 2: two groups whose sub-groups nearly touch (one 4-NN edge joins them at level 1); a long edge
    # is a low saddle, so level 2 keeps the 4 groups (NMI 0.855 with plain ToMATo saddles)
    x, labels = nested_groups((4, 5), n=3000, seed=2)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.emit_batch(CHAT, x).token_ids.numpy()
    h = eng.hierarchy()
    assert nmi(labels[:, 1], h.ancestors(ids, 1)) >= 0.9
    assert nmi(labels[:, 0], h.ancestors(ids, 2)) >= 0.9


def test_the_gap_rule_is_a_cdna_choice() -> None:
    x, labels = nested_groups((4, 5), n=1500, seed=1)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x).replace(field_persistence_rule="gap"))
    ids = eng.emit_batch(CHAT, x).token_ids.numpy()
    h = eng.hierarchy()
    assert nmi(labels[:, 1], h.ancestors(ids, 1)) >= 0.9
    assert nmi(labels[:, 0], h.ancestors(ids, 2)) >= 0.9
