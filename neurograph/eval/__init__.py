"""Evaluation of emergence: metrics, clustering baselines and the runner behind
``scripts/eval_emergence.py`` (an adapter layer: it drives an engine from outside)."""

from neurograph.eval.baselines import hdbscan_labels, kmeans_labels, som_labels
from neurograph.eval.metrics import ari, cluster_scores, field_stability, nesting_consistency, nmi, purity
from neurograph.eval.runner import EmergenceRun, format_table, machine_info, preset_cdna, run_emergence

__all__ = [
    "EmergenceRun",
    "ari",
    "cluster_scores",
    "field_stability",
    "format_table",
    "hdbscan_labels",
    "kmeans_labels",
    "machine_info",
    "nesting_consistency",
    "nmi",
    "preset_cdna",
    "purity",
    "run_emergence",
    "som_labels",
]
