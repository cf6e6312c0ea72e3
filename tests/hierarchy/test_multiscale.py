"""Multi-scale fields (DESIGN §5): data made of groups of groups give level-1 fields that are the groups
and level-2 fields that are the groups of groups, with a calibrated CDNA and no tuning."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

import neurograph as ng
from neurograph.datasets import nested_groups
from neurograph.hierarchy import BasinGrouping
from neurograph.hierarchy.basins import knn_graph, natural_neighbours
from neurograph.hierarchy.gaps import finest_gap_cut, join_linked, split_at_gaps

CHAT = "signal.input.external.text.chat"


def test_nested_groups_labels_every_level() -> None:
    x, labels = nested_groups((3, 3, 4), n=500, seed=1)
    assert x.shape == (500, 8) and labels.shape == (500, 3)
    assert [len(np.unique(labels[:, j])) for j in range(3)] == [3, 9, 36]
    assert (labels[:, 0] == labels[:, 1] // 3).all() and (labels[:, 1] == labels[:, 2] // 4).all()


def test_two_levels_of_groups_are_recovered() -> None:
    x, labels = nested_groups((4, 5), n=1500, seed=0)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.emit_batch(CHAT, x).token_ids.numpy()
    h = eng.hierarchy()
    level1, level2 = h.ancestors(ids, 1), h.ancestors(ids, 2)
    assert nmi(labels[:, 1], level1) >= 0.9  # the 20 sub-groups
    assert nmi(labels[:, 0], level2) >= 0.9  # the 4 groups of them
    assert len(np.unique(level2[level2 >= 0])) > 1


def test_graph_degree_follows_the_level_size() -> None:
    g = BasinGrouping(k=16, min_size=5)
    assert g.k_for(3000) == 16 and g.k_for(120) == 16  # signal tokens: a smooth density
    assert g.k_for(20) == 4 and g.k_for(12) == 4  # a small level: a group of 5 is its own clique
    assert g.k_for(50) == 10
    # fewer neighbours, a noisier density: the persistence floor grows as (16 / k) ** 0.75
    assert g.persistence_for(16) == 1.0 and abs(g.persistence_for(4) - 4**0.75) < 1e-12


def test_a_structureless_small_level_is_one_field() -> None:
    # the floor that grows as the degree falls keeps noise bumps of small levels from standing
    g = BasinGrouping(k=16, min_size=5)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        for x in (rng.normal(size=(20, 8)), rng.normal(size=(40, 8)), rng.uniform(-1, 1, (60, 8))):
            assert g(torch.from_numpy(x).float(), torch.ones(len(x))).n_fields == 1


def test_three_levels_of_groups_are_recovered() -> None:
    # 3 groups of 3 groups of 4 sub-groups: a middle group holds 4 fields and a top group 3, fewer than
    # min_field_size = 5; fields of fields need two children and find their group by its distance gap
    x, labels = nested_groups((3, 3, 4), n=900, spread=1.0, ratio=0.25, noise=0.03, seed=0)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.emit_batch(CHAT, x).token_ids.numpy()
    h = eng.hierarchy()
    for level in (1, 2, 3):
        assert nmi(labels[:, 3 - level], h.ancestors(ids, level)) >= 0.9, level
    assert h.sizes()[2:] == [9, 3]  # the 9 middle groups, the 3 top groups


def test_natural_degree_is_the_largest_gap_of_a_tokens_distances() -> None:
    # four tight groups of 3 far apart: every token's largest gap follows its 2 group mates
    rng = np.random.default_rng(0)
    centres = 10.0 * rng.normal(size=(4, 8))
    pos = torch.from_numpy(np.repeat(centres, 3, 0) + 0.1 * rng.normal(size=(12, 8))).float()
    idx, dist = knn_graph(pos, 11, torch.ones(8))
    keep, _ = natural_neighbours(idx, dist, 8.0, 3.0)
    assert ((keep >= 0).sum(1) == 2).all()
    assert (keep[keep >= 0] // 3 == (torch.arange(12)[:, None] // 3).expand(12, 11)[keep >= 0]).all()
    # no gap (a uniform cloud): every token keeps its K neighbours, a smooth level
    flat = torch.from_numpy(rng.uniform(-1, 1, (40, 8))).float()
    idx, dist = knn_graph(flat, 16, torch.ones(8))
    keep, _ = natural_neighbours(idx, dist, 8.0, 3.0)
    assert (keep >= 0).sum(1).float().mean() > 12


def test_finest_gap_cut_takes_the_structure_just_above_the_tokens() -> None:
    # 3 groups of 3 groups of 3 tokens, each scale 20x the one below: the first cut is the 9 middle
    # groups (the finest gap), the cut of their centroids the 3 top groups, then no structure is left
    rng = np.random.default_rng(0)
    top = 100.0 * rng.normal(size=(3, 8))
    mid = np.repeat(top, 3, 0) + 5.0 * rng.normal(size=(9, 8))
    pos = torch.from_numpy(np.repeat(mid, 3, 0) + 0.25 * rng.normal(size=(27, 8))).float()
    group, gap = finest_gap_cut(pos, torch.ones(8), 8.0, 3.0)
    assert gap >= 3.0 and (group.numpy() == np.arange(27) // 3).all()  # numbered by their first row
    centroids = torch.stack([pos[group == g].mean(0) for g in range(9)])
    group, _ = finest_gap_cut(centroids, torch.ones(8), 8.0, 3.0)
    assert (group.numpy() == np.arange(9) // 3).all()
    tops = torch.stack([centroids[group == g].mean(0) for g in range(3)])
    group, gap = finest_gap_cut(tops, torch.ones(8), 8.0, 3.0)
    assert (group == 0).all() and gap == 0.0  # 3 tokens: a pair beside a lone token is no structure


def test_finest_gap_cut_finds_nothing_in_a_structureless_level() -> None:
    rng = np.random.default_rng(1)
    for n in (50, 200):
        pos = torch.from_numpy(rng.uniform(-1, 1, (n, 8))).float()
        group, gap = finest_gap_cut(pos, torch.ones(8), 8.0, 3.0)
        assert (group == 0).all() and gap == 0.0


def test_finest_gap_cut_leaves_no_lone_token_and_honours_the_metric() -> None:
    rng = np.random.default_rng(2)
    pos = np.concatenate([rng.normal(size=(6, 8)), 50.0 + rng.normal(size=(6, 8)), [[500.0] * 8]])
    group, _ = finest_gap_cut(torch.from_numpy(pos).float(), torch.ones(8), 8.0, 3.0)
    assert np.bincount(group.numpy()).min() >= 2  # the outlier joins a group, it is no group alone
    # the same two groups apart along axis 0 only: a scale of 0 on that axis hides the gap
    flat = rng.normal(size=(12, 8))
    flat[6:, 0] += 100.0
    scale = torch.ones(8)
    assert finest_gap_cut(torch.from_numpy(flat).float(), scale, 8.0, 3.0)[0].unique().numel() == 2
    scale[0] = 0.0
    assert finest_gap_cut(torch.from_numpy(flat).float(), scale, 8.0, 3.0)[0].unique().numel() == 1


def test_two_wide_overlapping_groups_of_six_are_two_fields_at_level_2() -> None:
    # the eval's nested (2, 6) setting, seed 2: the nearest field of the other group is as near as a
    # field's sisters, so no field has a gap of its own distances; the dendrogram's finest gap splits them
    x, labels = nested_groups((2, 6), n=1200, spread=0.3, ratio=0.35, noise=0.01, seed=2)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.emit_batch(CHAT, x).token_ids.numpy()
    h = eng.hierarchy()
    assert nmi(labels[:, 1], h.ancestors(ids, 1)) >= 0.9
    assert nmi(labels[:, 0], h.ancestors(ids, 2)) >= 0.9


def test_a_strong_link_joins_the_groups_of_a_level_of_fields() -> None:
    rng = np.random.default_rng(3)
    pos = torch.from_numpy(np.concatenate([rng.normal(size=(6, 8)), 50.0 + rng.normal(size=(6, 8))])).float()
    g = BasinGrouping(k=16, min_size=5)
    assert g(pos, torch.ones(12), of_fields=True).n_fields == 2
    linked = g(pos, torch.ones(12), links=torch.tensor([[0], [7]]), of_fields=True)
    assert linked.n_fields == 1 and (linked.cluster == 0).all()
    assert (
        join_linked(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([[4], [2]])) == torch.tensor([0, 0, 1, 1, 1])
    ).all()


def test_a_basin_of_two_touching_groups_splits_at_their_gap() -> None:
    # sub-groups whose points touch: one density basin, but their distances show the gap
    x, labels = nested_groups((2, 5, 5), n=2500, spread=0.5, ratio=0.25, noise=0.02, seed=1)
    pos, mass = torch.from_numpy(x), torch.ones(len(x))
    whole = BasinGrouping(split_jump=float("inf"))(pos, mass)
    split = BasinGrouping()(pos, mass)
    assert split.n_fields > whole.n_fields
    assert nmi(labels[:, 2], split.cluster.numpy()) > nmi(labels[:, 2], whole.cluster.numpy()) + 0.005
    assert split.sizes.min() >= 5 and (split.cluster[split.peak] == split.cluster).all()


def test_split_at_gaps_keeps_structureless_and_linked_basins_whole() -> None:
    rng = np.random.default_rng(6)
    rank = torch.arange(400)
    # one stretched Gaussian (3 : 1 : ... : 0.3): Ward's last merges jump, yet below the split gap
    blob = torch.from_numpy(rng.normal(size=(400, 8)) * np.array([3, 1, 1, 1, 1, 1, 1, 0.3])).float()
    one = torch.zeros(400, dtype=torch.int64)
    assert (split_at_gaps(blob, torch.ones(8), one, rank, None, 8.0) == 0).all()
    # two far groups in one basin split, each part's peak its highest-ranked token ...
    pair = torch.from_numpy(
        np.concatenate([rng.normal(size=(200, 8)), 40 + rng.normal(size=(200, 8))])
    ).float()
    peak = split_at_gaps(pair, torch.ones(8), one, rank, None, 8.0)
    assert (peak[:200] == 199).all() and (peak[200:] == 399).all()
    # ... unless a strong link joins them
    assert (split_at_gaps(pair, torch.ones(8), one, rank, torch.tensor([[3], [250]]), 8.0) == 0).all()
