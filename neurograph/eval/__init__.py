"""Evaluation of emergence: metrics, clustering baselines and the runners behind
``scripts/eval_emergence.py`` (an adapter layer: it drives an engine from outside): ``runner`` scores the
level-1 fields, ``hierarchy`` every level against nested labels (``--hierarchy``)."""

from neurograph.eval.baselines import hdbscan_labels, kmeans_labels, som_labels
from neurograph.eval.hierarchy import NESTED_SUITE, HierarchyEval, NestedSpec, engine_tree, run_hierarchy_eval
from neurograph.eval.metrics import (
    ari,
    cluster_scores,
    dendrogram_purity,
    field_stability,
    linkage_parent,
    nesting_consistency,
    nmi,
    purity,
)
from neurograph.eval.runner import EmergenceRun, format_table, machine_info, preset_cdna, run_emergence

__all__ = [
    "NESTED_SUITE",
    "EmergenceRun",
    "HierarchyEval",
    "NestedSpec",
    "ari",
    "cluster_scores",
    "dendrogram_purity",
    "engine_tree",
    "field_stability",
    "format_table",
    "hdbscan_labels",
    "kmeans_labels",
    "linkage_parent",
    "machine_info",
    "nesting_consistency",
    "nmi",
    "preset_cdna",
    "purity",
    "run_emergence",
    "run_hierarchy_eval",
    "som_labels",
]
