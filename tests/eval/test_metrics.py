"""Emergence metrics and baselines on small known cases."""

from __future__ import annotations

import numpy as np
import pytest

import neurograph as ng
from neurograph.datasets import blobs_8d
from neurograph.eval import (
    ari,
    cluster_scores,
    field_stability,
    hdbscan_labels,
    kmeans_labels,
    nesting_consistency,
    nmi,
    purity,
    som_labels,
)


def test_scores_of_known_labellings():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    assert nmi(labels, labels) == pytest.approx(1.0) and ari(labels, labels) == pytest.approx(1.0)
    assert nmi(labels, np.array([5, 5, 5, 9, 9, 9, 7, 7])) == pytest.approx(1.0)  # names do not matter
    assert purity(labels, np.zeros(8, int)) == pytest.approx(3 / 8)
    assert purity(labels, np.array([0, 0, 1, 1, 1, 1, 2, 2])) == pytest.approx(7 / 8)
    s = cluster_scores(labels, np.array([0, 0, 0, 1, 1, 1, -1, -1]))
    assert s["coverage"] == pytest.approx(0.75) and s["clusters"] == 2
    assert s["nmi_covered"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)  # -1 is one more group
    assert cluster_scores(labels, np.full(8, -1))["nmi_covered"] == 0.0


def test_nesting_and_stability_of_a_hierarchy():
    x, _ = blobs_8d(n=400, centers=4, seed=0)
    eng = ng.Engine(cdna=ng.CDNA(min_field_size=3))
    eng.add_tokens(x)
    first = eng.hierarchy()
    nesting = nesting_consistency(first)
    assert set(nesting) == {"0->1", "1->2"}
    assert nesting["0->1"]["contained"] == 1.0 and nesting["0->1"]["nearest_is_parent"] == 1.0
    again = eng.hierarchy()
    s = field_stability(first, again)
    assert s == {"tokens_compared": 400, "ari": 1.0, "same_field_id": 1.0, "ids_persisting": 1.0}
    eng.add_tokens(x[:50] + 0.01)  # more tokens: the old ones keep their fields
    s = field_stability(first, eng.hierarchy())
    assert s["tokens_compared"] == 400 and s["same_field_id"] == 1.0


def test_baselines_find_separated_blobs():
    x, labels = blobs_8d(n=600, centers=4, seed=1)
    assert nmi(labels, kmeans_labels(x, 4)) == pytest.approx(1.0)
    h = hdbscan_labels(x, 10)
    assert h.shape == (600,) and nmi(labels[h >= 0], h[h >= 0]) == pytest.approx(1.0)
    s = som_labels(x, (2, 2), seed=0, iterations=2000)
    assert s.min() >= 0 and s.max() < 4 and nmi(labels, s) > 0.9
