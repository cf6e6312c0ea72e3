"""The hierarchy evaluation (``eval_emergence.py --hierarchy``): dendrogram purity on hand-checked trees,
the engine's tree, and a real run of the mode at a tiny size."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage

import neurograph as ng
from neurograph.datasets import nested_groups
from neurograph.eval import (
    HierarchyEval,
    NestedSpec,
    dendrogram_purity,
    engine_tree,
    linkage_parent,
    run_hierarchy_eval,
)

ROOT = Path(__file__).resolve().parents[2]


def test_dendrogram_purity_of_a_hand_checked_tree():
    # samples 0..3 with classes [a, a, b, a]; tree ((0, 1), (2, 3)): nodes 4 = {0, 1}, 5 = {2, 3}, 6 = root
    labels = np.array([0, 0, 1, 0])
    parent = np.array([4, 4, 5, 5, 6, 6, -1])
    # class-a pairs: (0, 1) meet in {0, 1}, purity 1; (0, 3) and (1, 3) meet at the root, purity 3/4;
    # class b has no pair
    assert dendrogram_purity(labels, parent) == pytest.approx((1 + 0.75 + 0.75) / 3)
    # the classes as subtrees: 1
    assert dendrogram_purity(labels, np.array([5, 5, 4, 5, 6, 6, -1])) == pytest.approx(1.0)
    # a flat tree: every pair meets at the root, purity 3/4
    assert dendrogram_purity(labels, np.array([4, 4, 4, 4, -1])) == pytest.approx(0.75)
    # a forest reads as its trees under one more root; no pair: nan
    assert dendrogram_purity(labels, np.array([4, 4, -1, -1, -1])) == pytest.approx((1 + 0.75 + 0.75) / 3)
    assert np.isnan(dendrogram_purity(np.array([0, 1]), np.array([2, 2, -1])))
    with pytest.raises(ValueError, match="parent"):
        dendrogram_purity(labels, np.array([4, 4, 5, 5, -1, 4]))  # a parent before its child


def _brute_force_purity(labels: np.ndarray, parent: np.ndarray) -> float:
    """Pair by pair: walk up to the smallest common cluster, count its members."""
    n = labels.size
    members: dict[int, list[int]] = {}
    for i in range(n):
        node = i
        while node >= 0:
            members.setdefault(node, []).append(i)
            node = parent[node]
    scores = []
    for i, j in itertools.combinations(range(n), 2):
        if labels[i] != labels[j]:
            continue
        node = i
        while j not in members[node]:
            node = parent[node]
        scores.append(np.mean(labels[members[node]] == labels[i]))
    return float(np.mean(scores))


def test_dendrogram_purity_matches_the_pairwise_definition_on_a_ward_tree(rng):
    x = rng.normal(size=(40, 3))
    labels = rng.integers(0, 3, 40)
    parent = linkage_parent(linkage(x, "ward"))
    assert parent.shape == (79,) and (parent == -1).sum() == 1
    assert dendrogram_purity(labels, parent) == pytest.approx(_brute_force_purity(labels, parent))


def test_engine_tree_reads_samples_tokens_and_fields():
    x, labels = nested_groups((4, 5), n=400, seed=0)
    eng = ng.Engine(cdna=ng.CDNA.calibrate(x))
    ids = eng.emit_batch("signal.input.external.eval.sample", x).token_ids.numpy()
    h = eng.hierarchy()
    parent = engine_tree(h, ids)
    assert parent.shape == (400 + sum(h.sizes()) + 1,) and (parent == -1).sum() == 1
    assert (parent[parent >= 0] > np.nonzero(parent >= 0)[0]).all()  # children first
    # two samples in one level-1 field share that node in the tree
    offset1 = 400 + h.sizes()[0]
    fields = h.ancestors(ids, 1)
    level0_parent = parent[parent[:400]]  # each sample's token's parent node
    inside = fields >= 0
    row_of = {int(i): r for r, i in enumerate(h.levels[1].ids.numpy())}
    assert (level0_parent[inside] == offset1 + np.array([row_of[int(f)] for f in fields[inside]])).all()
    assert dendrogram_purity(labels[:, 1], parent) > 0.9


def test_a_quick_run_reports_every_level_against_the_baselines():
    cfg = HierarchyEval.quick(digits_n=200, steps=2)
    report = run_hierarchy_eval(cfg)
    json.dumps(report, default=float)  # JSON-able
    cases = report["cases"]
    assert [c["kind"] for c in cases] == ["nested", "nested", "digits"]
    methods = {r["method"] for r in cases[0]["rows"]}
    assert {"engine", "engine + 2 steps/batch", "Ward, true k", "Birch, true k"} <= methods
    assert any(m.startswith("HDBSCAN") for m in methods)
    for case in cases:
        assert case["k_true"] and case["levels"] == len(case["k_true"])
        for method in methods:  # one row per method and level
            assert sorted(r["level"] for r in case["rows"] if r["method"] == method) == list(
                range(1, case["levels"] + 1)
            )
        assert set(case["dendrogram_purity"]) == {"engine", "engine + 2 steps/batch", "Ward dendrogram"}
        for e in case["engine"].values():
            assert e["tokens_per_level"][0] > 0 and e["seconds"]["grouping_per_level"]
            matrix = e["nmi_by_truth_level"]  # engine levels x truth levels
            assert len(matrix) == len(e["tokens_per_level"]) - 1
            assert all(len(row) == case["levels"] for row in matrix)
    two_levels = cases[0]
    assert two_levels["k_true"] == [20, 4] and two_levels["levels"] == 2
    for method in ("engine", "engine + 2 steps/batch"):
        level1 = next(r for r in two_levels["rows"] if r["method"] == method and r["level"] == 1)
        assert level1["nmi"] >= 0.9  # the 20 groups
    ward = next(r for r in two_levels["rows"] if r["method"] == "Ward, true k" and r["level"] == 2)
    assert ward["k_true"] == 4 and ward["groups"] == 4
    digits = cases[2]
    table = digits["level2_classes"]["engine"]
    assert table["classes"] == list(range(10)) and sum(f["samples"] for f in table["fields"]) == 200
    assert set(report["targets"]) == {
        "nested_nmi_every_level",
        "digits_level1_vs_best_baseline",
        "digits_level2_fields",
    }
    assert report["targets"]["nested_nmi_every_level"]["runs"] == 4  # 2 data sets x with/without dynamics
    assert {"platform", "cpu", "torch", "sklearn", "device"} <= set(report["machine"])


def test_nested_spec_names_its_setting():
    spec = NestedSpec((3, 3, 4), 720, 0.5, 0.25, 0.02)
    assert spec.name == "nested (3, 3, 4) n=720 (~20/group) spread=0.5 ratio=0.25 noise=0.02"


@pytest.mark.slow
def test_the_script_writes_the_hierarchy_report(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "eval_emergence.py"),
            "--hierarchy",
            "--quick",
            "--steps",
            "0",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads((tmp_path / "eval_hierarchy_quick.json").read_text())
    assert report["command"].startswith("python scripts/eval_emergence.py --hierarchy --quick")
    assert {"load_average", "date", "sklearn"} <= set(report["machine"])
    assert all(list(c["engine"]) == ["engine"] for c in report["cases"])  # --steps 0: no dynamics run
    md = (tmp_path / "eval_hierarchy_quick.md").read_text()
    assert "| data set | level | k |" in md and "Dendrogram purity" in md and "Targets" in md
    assert "| data set | engine level | fields | truth 1 | truth 2 | truth 3 |" in md
    assert "level-2 field" in md and report["command"] in md
