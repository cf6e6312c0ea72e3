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
from neurograph.state import EdgeState

__all__ = [
    "EdgePlan",
    "LearningStats",
    "apply_learning",
    "cumcount_tensor",
    "decay_confidence",
    "hebbian_failure",
    "hebbian_success",
    "plan_edges",
    "positions",
    "positions_by_scan",
    "promote",
    "prune_mask",
    "sort_groups",
    "take_rows",
]


ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return torch.where(cond, a, b) if isinstance(cond, torch.Tensor) else np.where(cond, a, b)


def hebbian_success(
    confidence: ArrayT,
    weight: ArrayT,
    evidence: ArrayT,
    mutability: ArrayT,
    count: ArrayT,
    resonance: ArrayT,
    cdna: CDNA,
) -> tuple[ArrayT, ArrayT, ArrayT, ArrayT]:
    """Apply ``count`` co-activations to existing edges (immutable edges are returned unchanged).

    Takes numpy arrays or torch tensors (float64 ``confidence``, ``weight``, ``resonance``) and returns
    the same kind: the single-signal path and the batch path share this one formula.

    Shapes:
        every argument ``[P]`` -> ``(confidence, weight, evidence, mutability)`` each ``[P]``.
    """
    lr = cdna.learning_rate
    frozen = mutability == IMMUTABLE
    if isinstance(confidence, torch.Tensor):
        conf = torch.clamp(confidence + count.to(confidence.dtype) * lr, max=1.0)
        keep = torch.pow(1.0 - lr, count.to(weight.dtype))  # (1 - lr)^count
        w = torch.clamp(resonance + keep * (weight - resonance), cdna.weight_min, cdna.weight_max)
    else:
        conf = np.minimum(1.0, confidence + count * lr)
        w = resonance + (1.0 - lr) ** count * (weight - resonance)
        w = np.clip(w, cdna.weight_min, cdna.weight_max)
    ev = evidence + count
    mut = _where((mutability == HYPOTHESIS) & (ev >= cdna.promotion_evidence), LEARNABLE, mutability)
    return (
        _where(frozen, confidence, conf),
        _where(frozen, weight, w),
        _where(frozen, evidence, ev),
        mut,
    )


def hebbian_failure(confidence: np.ndarray, mutability: np.ndarray, cdna: CDNA) -> np.ndarray:
    """Lower confidence by half the learning rate (immutable edges unchanged). Shapes: ``[P] -> [P]``."""
    lowered = np.maximum(0.0, confidence - 0.5 * cdna.learning_rate)
    return np.where(mutability == IMMUTABLE, confidence, lowered)


@dataclass
class EdgePlan:
    """Edge changes planned for a batch, applied only after the quotas were checked.

    Every tensor is indexed like the proposed pairs, ``[P]`` (no host sync to size it), with masks: the
    first pair of each distinct pair (its *lead*) speaks for all its repeats, so the masked entries come
    in signal order.

    Shapes:
        upd_mask ``[P]`` bool: a lead pair whose existing edge is reinforced; upd_edge ``[P]`` its slot,
        upd_count ``[P]`` co-activations of the pair, upd_res ``[P]`` float64 their mean resonance;
        new_mask ``[P]`` bool: a lead pair admitted as a new edge (the ``j``-th admitted one is new edge
        ``j``); new_src, new_dst ``[P]`` token slots (``src < dst``), new_weight ``[P]`` float64,
        new_count ``[P]``; pair_edge ``[P]`` for every proposed pair the existing edge slot, or ``-2 - j``
        for the ``j``-th new edge, or -1 (none, or refused).
    """

    upd_mask: torch.Tensor
    upd_edge: torch.Tensor
    upd_count: torch.Tensor
    upd_res: torch.Tensor
    new_mask: torch.Tensor
    new_src: torch.Tensor
    new_dst: torch.Tensor
    new_weight: torch.Tensor
    new_count: torch.Tensor
    pair_edge: torch.Tensor

    def edges_after(self, first_new_edge: int) -> torch.Tensor:
        """Edge slot joining each proposed pair once the plan is applied with new edges appended from
        slot ``first_new_edge`` (-1 where there is none). Shapes: ``[P]``."""
        e = self.pair_edge
        return torch.where(e <= -2, first_new_edge + (-2 - e), e)


_NO_KEY = torch.iinfo(torch.int64).max
_INT32_ROWS = 1 << 30  # cumcount_tensor sorts int32 keys below this length (token slots stay below 2^31)


def plan_edges(
    a: torch.Tensor,
    b: torch.Tensor,
    pair_mask: torch.Tensor | None,
    resonance: torch.Tensor,
    existing: torch.Tensor,
    degree_of: torch.Tensor,
    cdna: CDNA,
) -> EdgePlan:
    """Deduplicate co-activated pairs, split them into reinforcements and new hypotheses, bound degrees.

    Fixed-shape tensor work on the pairs' device (sorts, scans and scatters; no host sync).

    Args:
        a, b: ``[P]`` token slots of the proposed pairs, in signal order (``a != b`` where proposed).
        pair_mask: ``[P]`` bool, which entries are proposed pairs (``None``: all).
        resonance: ``[P]`` float64 resonance of each co-activation.
        existing: ``[P]`` slot of the learned edge already joining the pair, or -1.
        degree_of: ``[P, 2]`` current degrees of ``a`` and ``b`` (0 for tokens not yet inserted).
        cdna: the constitution in force.

    Returns:
        An :class:`EdgePlan`.
    """
    p = a.shape[0]
    dev = a.device
    if pair_mask is None:
        pair_mask = torch.ones(p, dtype=torch.bool, device=dev)
    pos = torch.arange(p, device=dev)
    lo = torch.minimum(a, b)
    hi = torch.maximum(a, b)
    key = torch.where(pair_mask, lo * (1 << 32) + hi, _NO_KEY)
    group = sort_groups(key)[2]  # (P,) group (distinct pair) of each proposed pair
    res = resonance * pair_mask  # (finite) resonance of the proposed pairs, 0 elsewhere
    counts = torch.zeros(p, dtype=torch.int64, device=dev).scatter_add_(0, group, pair_mask.long())
    res_sum = torch.zeros(p, dtype=res.dtype, device=dev).scatter_add_(0, group, res)
    res_max = torch.zeros(p, dtype=res.dtype, device=dev).scatter_reduce_(0, group, res, "amax")
    first = torch.full((p,), p, dtype=torch.int64, device=dev)
    first.scatter_reduce_(0, group, torch.where(pair_mask, pos, p), "amin")
    lead = pair_mask & (take_rows(first, group) == pos)  # (P,) the first pair of each group: it speaks for it
    count = take_rows(counts, group)  # (P,) co-activations of each pair's group
    old = lead & (existing >= 0)
    # new hypotheses: lead pairs without an edge, in signal order (the order of their first proposal)
    prop = lead & (existing < 0)
    if not cdna.allows_edge_kind(ASSOCIATED_WITH):
        prop = torch.zeros_like(prop)
    swap = a != lo  # degree_of is ordered as (a, b)
    deg_lo = torch.where(swap, degree_of[:, 1], degree_of[:, 0])
    deg_hi = torch.where(swap, degree_of[:, 0], degree_of[:, 1])
    # endpoints interleaved (lo, hi) in proposal order: rank among a node's new edges
    occ = torch.stack([lo, hi], 1).reshape(2 * p)  # (2P,)
    occ = torch.where(prop[:, None].expand(p, 2).reshape(2 * p), occ, -1 - torch.arange(2 * p, device=dev))
    rank = cumcount_tensor(occ).view(p, 2)  # (P, 2)
    ok = prop & (deg_lo + rank[:, 0] < cdna.max_degree) & (deg_hi + rank[:, 1] < cdna.max_degree)
    j = torch.cumsum(ok, 0) - 1  # (P,) number of each admitted edge
    code = torch.where(old, existing, torch.where(ok, -2 - j, -1))  # per lead pair
    group_edge = torch.full((p + 1,), -1, dtype=torch.int64, device=dev)
    group_edge.scatter_(0, torch.where(lead, group, p), code)  # one lead per group; the rest: spare slot
    return EdgePlan(
        upd_mask=old,
        upd_edge=existing,
        upd_count=count,
        upd_res=take_rows(res_sum, group) / count.clamp_min(1),
        new_mask=ok,
        new_src=lo,
        new_dst=hi,
        new_weight=torch.clamp(
            take_rows(res_max, group) * cdna.confidence_init, cdna.weight_min, cdna.weight_max
        ),
        new_count=count,
        pair_edge=torch.where(pair_mask, take_rows(group_edge, group), -1),
    )


def cumcount_tensor(keys: torch.Tensor) -> torch.Tensor:
    """Occurrence number of each element among equal earlier elements (the tensor twin of
    :func:`neurograph.state.cumcount`): ``[5, 3, 5, 5] -> [0, 0, 1, 2]``. One stable sort, no host sync.

    Shapes:
        keys ``[n]`` int64 -> ``[n]`` int64.
    """
    n = keys.shape[0]
    idx = torch.arange(n, device=keys.device)
    if keys.dtype == torch.int64 and n < _INT32_ROWS:  # slots and -1 - position fit in int32: faster sort
        keys = keys.to(torch.int32)
    order, start, _ = sort_groups(keys, stable=True)
    group_start = torch.cummax(torch.where(start, idx, 0), 0).values  # (n,) sorted position of each run
    return torch.empty_like(idx).scatter_(0, order, idx - group_start)


def sort_groups(keys: torch.Tensor, stable: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort ``keys`` and number the runs of equal keys (the groups), without a host sync.

    Returns:
        ``(order, start, group)``: the sorting permutation ``[n]``; ``[n]`` bool, whether each sorted
        position begins a run; the run (group) number of each element, in the original order ``[n]``.
    """
    sorted_keys, order = torch.sort(keys, stable=stable)
    start = torch.ones(keys.shape[0], dtype=torch.bool, device=keys.device)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group = torch.empty_like(order).scatter_(0, order, torch.cumsum(start, 0) - 1)
    return order, start, group


def take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` for an integer index tensor of any shape, by ``index_select`` (on the CPU several
    times faster than advanced indexing).

    Shapes:
        t ``[C, ...]``, idx ``[...]`` -> ``[*idx.shape, ...]``.
    """
    return torch.index_select(t, 0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def positions(keep: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``True`` entries of ``keep``, ascending: ``nonzero`` without its host sync, given
    their number ``n`` (read at a sync point). On the CPU, where a sync costs nothing, ``nonzero`` itself.

    Shapes:
        keep ``[P]`` bool -> ``[n]`` int64.
    """
    if keep.device.type == "cpu":
        return torch.nonzero(keep).view(-1)
    return positions_by_scan(keep, n)


def positions_by_scan(keep: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`positions` by a scan and a scatter (no host sync on any device)."""
    rank = torch.cumsum(keep, 0) - 1
    out = torch.empty(n + 1, dtype=torch.int64, device=keep.device)
    idx = torch.arange(keep.shape[0], device=keep.device)
    out.scatter_(0, torch.where(keep, rank, n), idx)  # dropped entries all land on the spare slot n
    return out[:n]


# --- upkeep over engine time ------------------------------------------------------------------------
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
