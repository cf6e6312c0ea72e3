"""Multi-scale fields (DESIGN §5): data made of groups of groups give level-1 fields that are the groups
and level-2 fields that are the groups of groups, with a calibrated CDNA and no tuning."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import normalized_mutual_info_score as nmi

import neurograph as ng
from neurograph.datasets import nested_groups
from neurograph.hierarchy import BasinGrouping

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
    assert g.k_for(20) == 4 and g.k_for(12) == 4  # fields of fields: a group of 5 is its own clique
    assert g.k_for(50) == 10
