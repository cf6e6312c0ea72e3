"""Novelty with sequential semantics for whole batches, as tensor work on the engine's device.

A signal is *novel* iff no token lies within ``novelty_threshold`` of it; a novel signal becomes a new
token. For a batch ``V [B, 8]`` the answer must equal emitting the rows one by one (DESIGN §3.7): row ``j``
is novel iff no *resident* token and no *earlier novel row* ``i < j`` lies within the threshold, and its
neighbours are the ``k`` nearest among the residents and the earlier novel rows (which became tokens
before it).

The resident part is one exact kNN query for the whole batch (``NeighborIndex``). The in-batch part,
:func:`resolve_batch`, searches the batch's own rows with ``NeighborIndex.knn_earlier`` (only earlier
rows, as a sequential emit sees them) and decides with fixed-shape tensor rounds on the engine's device:

1. *Candidates*: rows with no resident within the threshold.
2. *Conflicts*: for each candidate the ``m`` nearest *earlier* candidates within the threshold; a list
   that came back full may be missing some (*truncated*).
3. *Rounds*: a candidate with a novel listed conflict is familiar; one whose listed conflicts are all
   familiar (and whose list is complete) is novel. This is the greedy in-order independent set, decided
   in a few vectorised rounds instead of a loop over rows.
4. *Neighbours from the batch*: the ``k`` nearest earlier novel rows within the radius, merged with the
   resident neighbours by (distance, slot); a novel row ``i`` has slot ``first_new_slot + rank(i)``, so
   new tokens sort after residents at equal distance exactly as sequential emits would.
5. *One host sync* per :data:`ROUNDS` rounds reads the counts: undecided and novel rows, the widest
   neighbour row and the co-activated pairs (steps 1-4 ran before it, so a usual batch needs one).
6. *Exact rounds* (dense clumps only): rows still undecided once the rounds stall (their lists were
   truncated) are decided by two existence queries per round: familiar if a novel row before it lies
   within the threshold, novel if neither a novel nor an undecided row before it does. Each such round
   decides at least the earliest undecided row and costs one sync; step 4 then runs again (one more).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neurograph.emit.hebbian import positions, take_rows
from neurograph.neighbors import NeighborIndex

__all__ = ["ROUNDS", "BatchNovelty", "resolve_batch"]

_CONFLICTS = 8  # m: earlier conflicts looked up per candidate before falling back to exact rounds
ROUNDS = 4  # resolution rounds between two host checks (usual batches need two or three)
_UNDECIDED, _NOVEL, _FAMILIAR = 0, 1, 2


@dataclass
class BatchNovelty:
    """Outcome of :func:`resolve_batch` (tensors on the batch's device, except ``n_new``).

    Shapes:
        is_novel ``[B]`` bool; slot ``[B]`` int64 (the new token's slot for novel rows, the resonating
        token's slot for familiar rows); nbr_slots ``[B, k]`` int64 (-1 padded); nbr_dist ``[B, k]``
        float64 (inf padded); new_rows ``[n_new]`` row index of each new token, ascending.
    """

    is_novel: torch.Tensor
    slot: torch.Tensor
    nbr_slots: torch.Tensor
    nbr_dist: torch.Tensor
    new_rows: torch.Tensor
    n_new: int  # host int (read at the novelty sync), as the two below
    width: int  # the largest number of neighbours of a row (``<= k``; 0 for an empty batch)
    n_pairs: int  # co-activated pairs: neighbours other than the row's token
    syncs: int  # host syncs this resolution took


def resolve_batch(
    index: NeighborIndex,
    x: torch.Tensor,
    res_slots: torch.Tensor,
    res_dist: torch.Tensor,
    threshold: float,
    radius: float,
    first_new_slot: int,
) -> BatchNovelty:
    """Decide novelty, result tokens and neighbours of a batch with sequential semantics.

    Args:
        index: the neighbour index (its metric and its in-batch search :meth:`~NeighborIndex.knn_earlier`).
        x: ``[B, 8]`` float32 signal positions (unscaled) on the store's device.
        res_slots: ``[B, k]`` resident neighbours within ``radius`` (sorted, -1 padded).
        res_dist: ``[B, k]`` float64 their distances (inf padded).
        threshold: novelty threshold.
        radius: neighbour radius (``>= threshold``).
        first_new_slot: the slot the first new token of this batch will get.

    Returns:
        A :class:`BatchNovelty`.
    """
    b, k = res_slots.shape
    dev = x.device
    cand = ~(res_dist[:, 0] <= threshold) if k else torch.ones(b, dtype=torch.bool, device=dev)
    ci, _ = index.knn_earlier(x, _CONFLICTS, threshold, points=cand, ask=cand)  # (B, m)
    listed = ci >= 0  # (B, m)
    truncated = listed[:, -1]  # all m used: more earlier conflicts may exist
    safe = ci.clamp_min(0)
    state = torch.where(cand, _UNDECIDED, _FAMILIAR).to(torch.int8)  # (B,)
    exact = False
    syncs = 0
    while True:
        prev = state
        if exact:  # the lists of the rows left were truncated: decide them against every earlier row
            state = _exact_round(index, x, state, threshold)
        else:
            for _ in range(ROUNDS):
                prev = state
                state = _round(state, safe, listed, truncated)
        novel = state == _NOVEL
        if not exact:  # usually the last pass: the neighbours come with the same sync
            nbr = _neighbours(index, x, novel, res_slots, res_dist, radius, first_new_slot)
        counts = [(state == _UNDECIDED).sum(), novel.sum(), (state != prev).sum()]
        und, n_new, changed, *sizes = torch.stack(counts + ([] if exact else nbr[3])).tolist()  # host sync
        syncs += 1
        if und == 0:
            break
        exact = exact or not changed
    if exact:
        nbr = _neighbours(index, x, novel, res_slots, res_dist, radius, first_new_slot)
        sizes = torch.stack(nbr[3]).tolist()  # host sync
        syncs += 1
    nbr_slots, nbr_dist, slot, _ = nbr
    new_rows = positions(novel, n_new)
    return BatchNovelty(
        novel, slot, nbr_slots, nbr_dist, new_rows, n_new, int(sizes[0]), int(sizes[1]), syncs
    )


def _round(
    state: torch.Tensor, safe: torch.Tensor, listed: torch.Tensor, truncated: torch.Tensor
) -> torch.Tensor:
    """One resolution round over the conflict lists ``safe [B, m]`` (valid where ``listed``)."""
    st = take_rows(state, safe)  # (B, m) states of the listed conflicts
    any_novel = (listed & (st == _NOVEL)).any(1)
    pending = (listed & (st == _UNDECIDED)).any(1)
    undecided = state == _UNDECIDED
    state = torch.where(undecided & any_novel, _FAMILIAR, state)
    return torch.where(undecided & ~any_novel & ~pending & ~truncated, _NOVEL, state)


def _exact_round(
    index: NeighborIndex, x: torch.Tensor, state: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Familiar if a novel row before lies within the threshold; novel if no novel and no undecided row
    before does (decides at least the earliest undecided row)."""
    undecided = state == _UNDECIDED
    near_novel = index.knn_earlier(x, 1, threshold, points=state == _NOVEL, ask=undecided)[0][:, 0] >= 0
    near_open = index.knn_earlier(x, 1, threshold, points=undecided, ask=undecided)[0][:, 0] >= 0
    state = torch.where(undecided & near_novel, _FAMILIAR, state)
    return torch.where(undecided & ~near_novel & ~near_open, _NOVEL, state)


def _neighbours(
    index: NeighborIndex,
    x: torch.Tensor,
    novel: torch.Tensor,
    res_slots: torch.Tensor,
    res_dist: torch.Tensor,
    radius: float,
    first_new_slot: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Each row's ``k`` nearest among the residents and the earlier novel rows (their slots to be).

    Returns:
        ``(nbr_slots [B, k], nbr_dist [B, k], slot [B], sizes)``: ``slot`` is each row's token (new or
        resonating); ``sizes`` two 0-d tensors, the largest number of neighbours of a row and the number
        of co-activated pairs (neighbours other than the row's token).
    """
    b, k = res_slots.shape
    new_slot = first_new_slot + torch.cumsum(novel, 0) - 1  # (B,) slot each novel row will get
    nbr_slots, nbr_dist = res_slots, res_dist
    if k:
        bi, bd = index.knn_earlier(x, k, radius, points=novel)  # (B, k) earlier novel rows
        bs = torch.where(bi >= 0, take_rows(new_slot, bi.clamp_min(0)), -1)
        nbr_slots, nbr_dist = _merge(res_slots, res_dist, bs, bd, k)
    first = nbr_slots[:, 0] if k else torch.full((b,), -1, dtype=torch.int64, device=x.device)
    slot = torch.where(novel, new_slot, first)
    filled = nbr_slots >= 0  # (B, k)
    widest = torch.cat([filled.sum(1), torch.zeros(1, dtype=torch.int64, device=x.device)]).max()
    pairs = (filled & (nbr_slots != slot[:, None])).sum()
    return nbr_slots, nbr_dist, slot, [widest, pairs]


def _merge(
    a_slots: torch.Tensor, a_dist: torch.Tensor, b_slots: torch.Tensor, b_dist: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge two neighbour lists sorted by (distance, slot), every slot of ``b`` above every slot of
    ``a`` (new tokens come after residents), keeping the first ``k`` of each row.

    An entry's place is its own index plus the number of entries of the other list before it (at equal
    distance ``a`` first): two batched ``searchsorted`` calls instead of a sort.

    Shapes:
        a_slots, a_dist ``[B, ka]``; b_slots, b_dist ``[B, kb]`` (-1 / inf padded) -> ``[B, k]`` each.
    """
    b, ka = a_slots.shape
    kb = b_slots.shape[1]
    dev = a_slots.device
    pos_a = torch.arange(ka, device=dev) + torch.searchsorted(b_dist, a_dist)  # (B, ka) b strictly before
    pos_b = torch.arange(kb, device=dev) + torch.searchsorted(a_dist, b_dist, right=True)  # (B, kb)
    slots = torch.empty((b, ka + kb), dtype=a_slots.dtype, device=dev)
    slots.scatter_(1, pos_a, a_slots).scatter_(1, pos_b, b_slots)
    dist = torch.empty((b, ka + kb), dtype=a_dist.dtype, device=dev)
    dist.scatter_(1, pos_a, a_dist).scatter_(1, pos_b, b_dist)
    return slots[:, :k], dist[:, :k]


def _counts(state: torch.Tensor, prev: torch.Tensor) -> tuple[int, int, bool]:
    """``(undecided rows, novel rows, whether the last round changed anything)``: one host sync."""
    und, nov, changed = torch.stack(
        [(state == _UNDECIDED).sum(), (state == _NOVEL).sum(), (state != prev).sum()]
    ).tolist()
    return int(und), int(nov), bool(changed)
