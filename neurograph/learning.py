"""Connection learning: Hebbian confidence, weights from resonance, degree-bounded growth.

Edges learn from *co-activation*: when a signal makes two tokens resonate together (a new token and its
neighbours, or a resonating token and the signal's other neighbours), the edge between them is
reinforced, or created as a *hypothesis* where absent.

Rules (all rates from the CDNA, all results clamped to its bounds):

- success (co-activation), applied ``m`` times for ``m`` co-activations::

      confidence <- min(1, confidence + m * learning_rate)
      weight     <- r + (1 - learning_rate)^m * (weight - r)      # r: mean resonance of the pair
      evidence   <- evidence + m

- failure (a prediction along the edge did not come true)::

      confidence <- max(0, confidence - learning_rate / 2)

- a hypothesis (mutability 2) with ``evidence >= promotion_evidence`` is promoted to learnable (1).
- new hypothesis edges: kind ``associated_with`` (0x50), weight = resonance, rest = ``rest_length``,
  confidence ``confidence_init + (m - 1) * learning_rate``, evidence ``m``.
- degrees: a token holds at most ``max_degree`` learned edges. New edges are admitted in the order of
  the signals that proposed them; an edge is refused when either endpoint would exceed the bound
  (conservatively: an edge refused for one endpoint still counts against the other within one batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurograph.cdna import CDNA
from neurograph.state import cumcount

__all__ = [
    "ASSOCIATED_WITH",
    "HYPOTHESIS",
    "IMMUTABLE",
    "LEARNABLE",
    "EdgePlan",
    "hebbian_failure",
    "hebbian_success",
    "plan_edges",
]

ASSOCIATED_WITH = 0x50  # kind of edges learned from co-activation
IMMUTABLE, LEARNABLE, HYPOTHESIS = 0, 1, 2  # mutability codes


def hebbian_success(
    confidence: np.ndarray,
    weight: np.ndarray,
    evidence: np.ndarray,
    mutability: np.ndarray,
    count: np.ndarray,
    resonance: np.ndarray,
    cdna: CDNA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``count`` co-activations to existing edges (immutable edges are returned unchanged).

    Shapes:
        every argument ``[P]`` -> ``(confidence, weight, evidence, mutability)`` each ``[P]``.
    """
    lr = cdna.learning_rate
    frozen = mutability == IMMUTABLE
    conf = np.minimum(1.0, confidence + count * lr)
    w = resonance + (1.0 - lr) ** count * (weight - resonance)
    w = np.clip(w, cdna.weight_min, cdna.weight_max)
    ev = evidence + count
    mut = np.where((mutability == HYPOTHESIS) & (ev >= cdna.promotion_evidence), LEARNABLE, mutability)
    return (
        np.where(frozen, confidence, conf),
        np.where(frozen, weight, w),
        np.where(frozen, evidence, ev),
        mut,
    )


def hebbian_failure(confidence: np.ndarray, mutability: np.ndarray, cdna: CDNA) -> np.ndarray:
    """Lower confidence by half the learning rate (immutable edges unchanged). Shapes: ``[P] -> [P]``."""
    lowered = np.maximum(0.0, confidence - 0.5 * cdna.learning_rate)
    return np.where(mutability == IMMUTABLE, confidence, lowered)


@dataclass
class EdgePlan:
    """Edge changes planned for a batch, applied only after the quotas were checked.

    Shapes:
        upd_edge ``[U]`` slots of existing edges to reinforce, upd_count ``[U]``, upd_res ``[U]``;
        new_src, new_dst ``[N]`` token slots, new_weight, new_count ``[N]``.
    """

    upd_edge: np.ndarray
    upd_count: np.ndarray
    upd_res: np.ndarray
    new_src: np.ndarray
    new_dst: np.ndarray
    new_weight: np.ndarray
    new_count: np.ndarray

    @property
    def n_new(self) -> int:
        return int(self.new_src.size)


def plan_edges(
    a: np.ndarray,
    b: np.ndarray,
    resonance: np.ndarray,
    existing: np.ndarray,
    degree_of: np.ndarray,
    cdna: CDNA,
) -> EdgePlan:
    """Deduplicate co-activated pairs, split them into reinforcements and new hypotheses, bound degrees.

    Args:
        a, b: ``[P]`` token slots of co-activated pairs, in signal order (``a != b``).
        resonance: ``[P]`` resonance of each co-activation.
        existing: ``[P]`` slot of the learned edge already joining the pair, or -1.
        degree_of: ``[P, 2]`` current degrees of ``a`` and ``b`` (0 for tokens not yet inserted).
        cdna: the constitution in force.

    Returns:
        An :class:`EdgePlan`.
    """
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    key = lo * (1 << 32) + hi
    uniq, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    res_sum = np.bincount(inverse, weights=resonance, minlength=uniq.size)
    res_mean = res_sum / counts
    res_max = np.zeros(uniq.size)
    np.maximum.at(res_max, inverse, resonance)
    ex = existing[first]
    old = ex >= 0
    # new hypotheses, in the order of the first signal that proposed them
    new = np.nonzero(~old)[0]
    new = new[np.argsort(first[new], kind="stable")]
    if not cdna.allows_edge_kind(ASSOCIATED_WITH):
        new = new[:0]
    src, dst = lo[first[new]], hi[first[new]]
    swap = a[first[new]] != src  # degree_of is ordered as (a, b)
    deg_src = np.where(swap, degree_of[first[new], 1], degree_of[first[new], 0])
    deg_dst = np.where(swap, degree_of[first[new], 0], degree_of[first[new], 1])
    occ = np.empty(2 * new.size, np.int64)  # endpoints in proposal order: rank among a node's new edges
    occ[0::2], occ[1::2] = src, dst
    rank = cumcount(occ)
    ok = (deg_src + rank[0::2] < cdna.max_degree) & (deg_dst + rank[1::2] < cdna.max_degree)
    new = new[ok]
    return EdgePlan(
        upd_edge=ex[old],
        upd_count=counts[old],
        upd_res=res_mean[old],
        new_src=lo[first[new]],
        new_dst=hi[first[new]],
        new_weight=np.clip(res_max[new], cdna.weight_min, cdna.weight_max),
        new_count=counts[new],
    )
