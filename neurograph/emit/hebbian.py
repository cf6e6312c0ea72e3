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
- new hypothesis edges: kind ``associated_with`` (0x50), weight = resonance x ``confidence_init`` (an
  unconfirmed hypothesis conducts activation weakly; reinforcement pulls the weight toward the
  resonance), rest = ``rest_length``,
  confidence ``confidence_init + (m - 1) * learning_rate``, evidence ``m``.
- degrees: a token holds at most ``max_degree`` learned edges. New edges are admitted in the order of
  the signals that proposed them; an edge is refused when either endpoint would exceed the bound
  (conservatively: an edge refused for one endpoint still counts against the other within one batch).

Upkeep over engine time (:func:`apply_learning`, called by ``Engine.learn()``; DESIGN §2 edge kinds in
:data:`EDGE_KINDS`):

- decay: an unconfirmed hypothesis loses ``decay_rate`` confidence per engine tick (signal) since it was
  last reinforced or last decayed, whichever is later (linear, so decaying at ``t1`` and then ``t2``
  equals decaying once at ``t2``)::

      confidence <- max(0, confidence - decay_rate * (tick - max(updated, last_upkeep)))

  learnable (promoted) and immutable edges do not decay;
- promotion: a hypothesis with ``evidence >= promotion_evidence`` becomes learnable (again here, so that
  lowering ``promotion_evidence`` in the CDNA promotes edges without waiting for a signal);
- pruning: a learned edge (not immutable, not structural) whose confidence fell below
  ``confidence_floor`` is removed;
- failures: edges named by the caller are lowered by ``learning_rate / 2`` (:func:`hebbian_failure`).

Structural ``part_of`` edges (relation group 0x60) belong to the hierarchy: learning never touches them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.kinds import ASSOCIATED_WITH, HYPOTHESIS, IMMUTABLE, LEARNABLE, is_learned_kind
from neurograph.state import EdgeState, cumcount

__all__ = [
    "EdgePlan",
    "LearningStats",
    "apply_learning",
    "decay_confidence",
    "hebbian_failure",
    "hebbian_success",
    "plan_edges",
    "promote",
    "prune_mask",
]


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
        new_src, new_dst ``[N]`` token slots, new_weight, new_count ``[N]``; pair_edge ``[P]`` for every
        proposed pair the existing edge slot, or ``-2 - j`` for the ``j``-th new edge, or -1 (refused).
    """

    upd_edge: np.ndarray
    upd_count: np.ndarray
    upd_res: np.ndarray
    new_src: np.ndarray
    new_dst: np.ndarray
    new_weight: np.ndarray
    new_count: np.ndarray
    pair_edge: np.ndarray

    @property
    def n_new(self) -> int:
        return int(self.new_src.size)

    def edges_after(self, first_new_edge: int) -> np.ndarray:
        """Edge slot joining each proposed pair once the plan is applied with new edges appended from
        slot ``first_new_edge`` (-1 where the new edge was refused). Shapes: ``[P]``."""
        e = self.pair_edge
        return np.where(e <= -2, first_new_edge + (-2 - e), e)


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
    uniq_edge = np.where(old, ex, -1)  # per unique pair: existing slot, new-edge code, or refused
    uniq_edge[new] = -2 - np.arange(new.size)
    return EdgePlan(
        upd_edge=ex[old],
        upd_count=counts[old],
        upd_res=res_mean[old],
        new_src=lo[first[new]],
        new_dst=hi[first[new]],
        new_weight=np.clip(res_max[new] * cdna.confidence_init, cdna.weight_min, cdna.weight_max),
        new_count=counts[new],
        pair_edge=uniq_edge[inverse],
    )


# --- upkeep over engine time ------------------------------------------------------------------------
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return torch.where(cond, a, b) if isinstance(cond, torch.Tensor) else np.where(cond, a, b)


def decay_confidence(confidence: ArrayT, mutability: ArrayT, elapsed: ArrayT, cdna: CDNA) -> ArrayT:
    """Hypotheses lose ``decay_rate`` per tick: ``max(0, c - decay_rate * elapsed)``; others unchanged.

    Shapes:
        confidence, mutability, elapsed (ticks) ``[E]`` -> ``[E]`` (the dtype of ``confidence``).
    """
    if isinstance(confidence, torch.Tensor):
        lowered = (confidence - cdna.decay_rate * elapsed).clamp_min(0.0).to(confidence.dtype)
        return torch.where(mutability == HYPOTHESIS, lowered, confidence)
    lowered = np.maximum(confidence - cdna.decay_rate * elapsed, 0.0).astype(confidence.dtype)
    return np.where(mutability == HYPOTHESIS, lowered, confidence)


def promote(mutability: ArrayT, evidence: ArrayT, cdna: CDNA) -> ArrayT:
    """Hypotheses with ``evidence >= promotion_evidence`` become learnable. Shapes: ``[E] -> [E]``."""
    up = (mutability == HYPOTHESIS) & (evidence >= cdna.promotion_evidence)
    return _where(up, mutability * 0 + LEARNABLE, mutability)


def prune_mask(confidence: ArrayT, mutability: ArrayT, kind: ArrayT, cdna: CDNA) -> ArrayT:
    """Learned, non-immutable edges whose confidence fell below ``confidence_floor``.

    Shapes:
        confidence, mutability, kind ``[E]`` -> ``[E]`` bool.
    """
    return (confidence < cdna.confidence_floor) & (mutability != IMMUTABLE) & is_learned_kind(kind)


@dataclass(frozen=True)
class LearningStats:
    """What one :func:`apply_learning` call did (counts of edges)."""

    decayed: int  # hypotheses whose confidence went down by decay
    promoted: int  # hypotheses promoted to learnable
    weakened: int  # edges lowered by a reported failure
    pruned: int  # edges removed below the confidence floor
    tick: int  # engine tick of the upkeep

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def apply_learning(
    edges: EdgeState, cdna: CDNA, tick: int, since: int, failed: np.ndarray | None = None
) -> LearningStats:
    """Upkeep of the learned edges at engine time ``tick`` (see the module docstring), in place.

    Runs as tensor ops on the edges' device; the only host transfers are the counts and the slots of the
    pruned edges.

    Args:
        edges: the edge store.
        cdna: the constitution in force (rates, floor, promotion evidence).
        tick: the engine time now.
        since: the tick of the previous upkeep (decay before it was already applied).
        failed: ``[P]`` edge slots whose prediction failed (lowered by ``learning_rate / 2`` first).

    Returns:
        A :class:`LearningStats`.
    """
    m = edges.count
    weakened = 0
    if failed is not None and np.asarray(failed).size:
        f = np.unique(np.asarray(failed, dtype=np.int64))
        f = f[edges.gather("alive", f) & is_learned_kind(edges.gather("kind", f))]
        conf = hebbian_failure(edges.gather("confidence", f), edges.gather("mutability", f), cdna)
        edges.scatter("confidence", f, conf.astype(np.float32))
        weakened = int(f.size)
    if m == 0:
        return LearningStats(0, 0, weakened, 0, tick)
    learned = edges.alive[:m] & is_learned_kind(edges.kind[:m])  # (m,)
    conf = edges.confidence[:m]
    mut = edges.mutability[:m]
    last = torch.clamp_min(edges.updated[:m], since)
    elapsed = (tick - last).clamp_min(0).to(conf.dtype)  # (m,) ticks since the later of both
    new_conf = torch.where(learned, decay_confidence(conf, mut, elapsed, cdna), conf)
    new_mut = torch.where(learned, promote(mut, edges.evidence[:m], cdna), mut)
    prune = learned & prune_mask(new_conf, new_mut, edges.kind[:m], cdna)
    counts = torch.stack([(new_conf < conf).sum(), (new_mut != mut).sum()]).tolist()  # one sync
    edges.confidence[:m] = new_conf
    edges.mutability[:m] = new_mut
    pruned = torch.nonzero(prune).flatten().cpu().numpy()
    edges.remove(pruned)
    return LearningStats(int(counts[0]), int(counts[1]), weakened, int(pruned.size), tick)
