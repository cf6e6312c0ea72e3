"""Emergence metrics: how well fields match labels, nest across levels and persist over time.

Labels are integer arrays, one entry per sample; ``-1`` in a predicted labelling means "in no field" and
is scored as one more group (as scikit-learn does with HDBSCAN's noise), so leaving points out is not
free: :func:`cluster_scores` also reports the *coverage* and the NMI over the covered points only.

- :func:`nmi`, :func:`ari`: scikit-learn's normalised mutual information (arithmetic normalisation) and
  adjusted Rand index.
- :func:`purity`: the share of samples whose predicted group's majority label is theirs.
- :func:`nesting_consistency`: per level of a :class:`~neurograph.hierarchy.Hierarchy`, the share of tokens
  whose ball lies inside their parent field's ball (``d + r_child <= R_parent``, geometric nesting) and
  the share whose nearest field one level up (by distance to its centre) is their own parent (the
  fields are basins, not Voronoi cells, so this is not 1 by construction).
- :func:`field_stability`: between two snapshots, the ARI of the level-``L`` assignments of the level-0
  tokens present in both, and the share of the earlier fields whose id is still alive.
- :func:`dendrogram_purity`: how well a whole tree over the samples (the engine's fields of fields, a
  linkage dendrogram) keeps the classes together, at every depth at once; :func:`linkage_parent` turns a
  scipy linkage matrix into the parent array it reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from neurograph.hierarchy.view import Hierarchy

__all__ = [
    "ari",
    "cluster_scores",
    "dendrogram_purity",
    "field_stability",
    "linkage_parent",
    "nesting_consistency",
    "nmi",
    "purity",
]


def nmi(labels: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation). Shapes: ``[n], [n] -> ()``."""
    return float(normalized_mutual_info_score(labels, pred))


def ari(labels: np.ndarray, pred: np.ndarray) -> float:
    """Adjusted Rand index. Shapes: ``[n], [n] -> ()``."""
    return float(adjusted_rand_score(labels, pred))


def purity(labels: np.ndarray, pred: np.ndarray) -> float:
    """``sum over predicted groups of their majority label's count / n``. Shapes: ``[n], [n] -> ()``."""
    labels = np.asarray(labels)
    pred = np.asarray(pred)
    if labels.size == 0:
        return 0.0
    _, p = np.unique(pred, return_inverse=True)
    _, t = np.unique(labels, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(1).sum() / labels.size)


def cluster_scores(labels: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """NMI, ARI, purity, coverage, number of groups, and the NMI over the covered samples only."""
    labels = np.asarray(labels)
    pred = np.asarray(pred)
    covered = pred >= 0
    return {
        "nmi": nmi(labels, pred),
        "ari": ari(labels, pred),
        "purity": purity(labels, pred),
        "coverage": float(covered.mean()) if pred.size else 0.0,
        "clusters": int(np.unique(pred[covered]).size),
        "nmi_covered": nmi(labels[covered], pred[covered]) if covered.any() else 0.0,
    }


def nesting_consistency(h: Hierarchy) -> dict[str, dict[str, float]]:
    """Per level pair ``"L->L+1"``: ``contained`` and ``nearest_is_parent`` shares (module docstring)."""
    out: dict[str, dict[str, float]] = {}
    for lv in range(h.n_levels - 1):
        low, up = h.levels[lv], h.levels[lv + 1]
        c = low.cluster.numpy()
        inside = c >= 0
        if not inside.any() or up.num_nodes == 0:
            continue
        x = low.pos.numpy()[inside].astype(np.float64)
        r = low.radius.numpy()[inside].astype(np.float64)
        centres = up.pos.numpy().astype(np.float64)
        d_all = np.sqrt(((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1))  # (m, G)
        d_own = d_all[np.arange(x.shape[0]), c[inside]]
        big_r = up.radius.numpy().astype(np.float64)[c[inside]]
        out[f"{lv}->{lv + 1}"] = {
            "contained": float((d_own + r <= big_r * (1 + 1e-5) + 1e-6).mean()),
            "nearest_is_parent": float((d_all.argmin(1) == c[inside]).mean()),
            "children": int(inside.sum()),
        }
    return out


def field_stability(before: Hierarchy, after: Hierarchy, level: int = 1) -> dict[str, Any]:
    """ARI of the level-``level`` assignments of the level-0 tokens in both snapshots, and the share of
    the earlier snapshot's fields whose id is still a field of that level."""
    ids_a = before.levels[0].ids.numpy() if before.levels else np.zeros(0, np.int64)
    ids_b = after.levels[0].ids.numpy() if after.levels else np.zeros(0, np.int64)
    common, ia, ib = np.intersect1d(ids_a, ids_b, return_indices=True)
    fa = before.assignment(level)[ia]
    fb = after.assignment(level)[ib]
    fields_a = before.levels[level].ids.numpy() if before.n_levels > level else np.zeros(0, np.int64)
    fields_b = after.levels[level].ids.numpy() if after.n_levels > level else np.zeros(0, np.int64)
    return {
        "tokens_compared": int(common.size),
        "ari": ari(fa, fb) if common.size else 0.0,
        "same_field_id": float((fa == fb).mean()) if common.size else 0.0,
        "ids_persisting": float(np.isin(fields_a, fields_b).mean()) if fields_a.size else 0.0,
    }


def dendrogram_purity(labels: np.ndarray, parent: np.ndarray) -> float:
    """Dendrogram purity (Heller & Ghahramani, ICML 2005) of a tree over labelled samples.

    Over every pair of samples with the same label, the purity of the smallest cluster of the tree that
    holds both (the share of that cluster's samples carrying the pair's label), averaged over the pairs.
    It is 1 when every class is a subtree, and it scores the whole tree at once: no level, no cut.

    The tree is a parent array: nodes ``0 .. n - 1`` are the samples, the others clusters; a cluster may
    have any number of children (a field holds many tokens) and a node's parent comes after it
    (``parent[i] > i``, the order of scipy's linkage merges), ``-1`` at a root. A forest is read as its
    trees under one more root (the whole data set). The pairs whose smallest common cluster is a node
    ``v`` number ``C(c_v, 2) - sum over children C(c_child, 2)`` per class (``c``: the class's count
    under the node), so one pass from the leaves up suffices.

    Args:
        labels: ``[n]`` class of each sample (any integers).
        parent: ``[N]`` parent node of each node, ``N >= n``.

    Returns:
        The purity in ``[0, 1]``; ``nan`` when no two samples share a label.

    Raises:
        ValueError: ``parent`` is shorter than ``labels`` or not ordered children first.
    """
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    parent = np.asarray(parent, dtype=np.int64)
    n, nodes = y.size, parent.size
    child = np.nonzero(parent >= 0)[0]
    if nodes < n or (parent[child] <= child).any() or (parent >= nodes).any():
        raise ValueError("parent must hold one entry per node, samples first, each parent after its child")
    if nodes - child.size > 1:  # a forest: one more root above its roots
        parent = np.append(np.where(parent >= 0, parent, nodes), -1)
        nodes += 1
    counts = np.zeros((nodes, int(y.max(initial=-1)) + 1), np.int64)  # (N, classes) samples under a node
    counts[np.arange(n), y] = 1
    inside_children = np.zeros_like(counts)  # same-class pairs held within one child of the node
    for i in range(nodes):  # children before parents
        p = parent[i]
        if p >= 0:
            counts[p] += counts[i]
            inside_children[p] += counts[i] * (counts[i] - 1) // 2
    pairs_here = counts * (counts - 1) // 2 - inside_children  # (N, classes) pairs meeting first here
    total = pairs_here.sum()
    if total == 0:
        return float("nan")
    size = np.maximum(counts.sum(1), 1)  # (N,)
    return float((pairs_here * counts / size[:, None]).sum() / total)


def linkage_parent(z: np.ndarray) -> np.ndarray:
    """The parent array of a scipy linkage matrix (merge ``i`` is node ``n + i``; the root has -1).

    Shapes:
        ``[n - 1, 4] -> [2n - 1]``.
    """
    z = np.asarray(z)
    n = z.shape[0] + 1
    parent = np.full(2 * n - 1, -1, np.int64)
    merge = n + np.arange(n - 1)
    parent[z[:, 0].astype(np.int64)] = merge
    parent[z[:, 1].astype(np.int64)] = merge
    return parent
