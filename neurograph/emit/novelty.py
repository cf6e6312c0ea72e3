"""Novelty with sequential semantics for whole batches.

A signal is *novel* iff no token lies within ``novelty_threshold`` of it; a novel signal becomes a new
token. For a batch ``V [B, 8]`` the answer must equal emitting the rows one by one (DESIGN §3.7): row ``j``
is novel iff no *resident* token and no *earlier novel row* ``i < j`` lies within the threshold, and its
neighbours are the ``k`` nearest among the residents and the earlier novel rows (which became tokens
before it).

The resident part is one exact kNN query for the whole batch (``NeighborIndex``). The in-batch part,
:func:`resolve_batch`, works on host arrays:

1. *Candidates*: rows with no resident within the threshold.
2. *Conflicts*: for each candidate the ``m`` nearest other candidates within the threshold.
3. *Rounds*: a candidate with a novel earlier conflict is familiar; one whose earlier conflicts are all
   familiar (and whose list was complete) is novel; repeat until nothing changes. This is the greedy
   in-order independent set, decided in a few vectorised rounds instead of a Python loop over rows.
4. *Fallback*: rows whose conflict list was truncated (dense clumps) and still undecided are decided in
   order against every novel row before them, exactly.
5. *Neighbours from the batch*: the ``k`` nearest earlier novel rows within the radius, merged with the
   resident neighbours by (distance, slot); a novel row ``i`` has slot ``first_new_slot + rank(i)``, so
   new tokens sort after residents at equal distance exactly as sequential emits would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurograph.neighbors import knn_arrays, sort_rows

__all__ = ["BatchNovelty", "resolve_batch"]

_CONFLICTS = 8  # m: conflicts looked up per candidate before falling back to exact checks


@dataclass
class BatchNovelty:
    """Outcome of :func:`resolve_batch` (host arrays).

    Shapes:
        is_novel ``[B]`` bool; slot ``[B]`` int64 (the new token's slot for novel rows, the resonating
        token's slot for familiar rows); nbr_slots ``[B, k]`` int64 (-1 padded);
        nbr_dist ``[B, k]`` float64 (inf padded); new_rows ``[n_new]`` row index of each new token.
    """

    is_novel: np.ndarray
    slot: np.ndarray
    nbr_slots: np.ndarray
    nbr_dist: np.ndarray
    new_rows: np.ndarray


def resolve_batch(
    xs: np.ndarray,
    res_slots: np.ndarray,
    res_dist: np.ndarray,
    threshold: float,
    radius: float,
    first_new_slot: int,
) -> BatchNovelty:
    """Decide novelty, result tokens and neighbours of a batch with sequential semantics.

    Args:
        xs: ``[B, 8]`` signal positions in scaled coordinates (plain Euclidean metric).
        res_slots: ``[B, k]`` resident neighbours within ``radius`` (sorted, -1 padded).
        res_dist: ``[B, k]`` their distances (inf padded).
        threshold: novelty threshold.
        radius: neighbour radius (``>= threshold``).
        first_new_slot: the slot the first new token of this batch will get.

    Returns:
        A :class:`BatchNovelty`.
    """
    b, k = res_slots.shape
    cand = ~(res_dist[:, 0] <= threshold) if k else np.ones(b, bool)
    novel = _decide_candidates(xs, np.nonzero(cand)[0], threshold)
    new_rows = np.nonzero(novel)[0]
    new_slot_of_row = np.full(b, -1, np.int64)
    new_slot_of_row[new_rows] = first_new_slot + np.arange(new_rows.size)

    nbr_slots, nbr_dist = res_slots, res_dist
    if new_rows.size and k:
        bi, bd = _earlier_knn(xs, new_rows, k, radius)
        has = (bi >= 0).any(1)
        if has.any():
            bs = np.where(bi >= 0, new_slot_of_row[new_rows][np.maximum(bi, 0)], -1)
            mi, md = sort_rows(
                np.concatenate([res_slots[has], bs[has]], 1), np.concatenate([res_dist[has], bd[has]], 1)
            )
            nbr_slots = res_slots.copy()
            nbr_dist = res_dist.copy()
            nbr_slots[has], nbr_dist[has] = mi[:, :k], md[:, :k]
    slot = np.where(novel, new_slot_of_row, nbr_slots[:, 0] if k else -1)
    return BatchNovelty(novel, slot, nbr_slots, nbr_dist, new_rows)


def _decide_candidates(xs: np.ndarray, cand: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy in-order independent set of the candidates under "within threshold"."""
    b = len(xs)
    novel = np.zeros(b, bool)
    if cand.size <= 1:
        novel[cand] = True
        return novel
    pts = xs[cand]
    m = min(_CONFLICTS, cand.size - 1)
    ci, _ = knn_arrays(pts, pts, m, threshold, exclude_self=True)  # (C, m) candidate-local
    truncated = ci[:, -1] >= 0  # all m used: more conflicts may exist
    own = np.arange(cand.size)[:, None]
    earlier = (ci >= 0) & (ci < own)
    if not earlier.any():
        novel[cand] = True
        return novel
    state = np.zeros(cand.size, np.int8)  # 0 undecided, 1 novel, 2 familiar
    safe = np.maximum(ci, 0)
    while True:
        st = state[safe]  # (C, m)
        any_novel = (earlier & (st == 1)).any(1)
        all_done = ~(earlier & (st == 0)).any(1)
        undecided = state == 0
        to_fam = undecided & any_novel
        to_nov = undecided & ~any_novel & all_done & ~truncated
        if not (to_fam.any() or to_nov.any()):
            break
        state[to_fam] = 2
        state[to_nov] = 1
    rest = np.nonzero(state == 0)[0]
    if rest.size:
        # exact, in order: a row is novel iff no novel row before it lies within the threshold
        thr2 = threshold * threshold
        for j in rest:
            prev = np.nonzero(state[:j] == 1)[0]
            if prev.size:
                d2 = ((pts[prev] - pts[j]) ** 2).sum(1)
                state[j] = 2 if (d2 <= thr2).any() else 1
            else:
                state[j] = 1
    novel[cand] = state == 1
    return novel


def _earlier_knn(
    xs: np.ndarray, new_rows: np.ndarray, k: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """For every row j, the k nearest new rows i < j within ``radius`` (indices into ``new_rows``)."""
    b = len(xs)
    pts = xs[new_rows]
    out_i = np.full((b, k), -1, np.int64)
    out_d = np.full((b, k), np.inf)
    rows = np.arange(b)
    kq = min(k + 1, new_rows.size)
    while rows.size:
        ii, dd = knn_arrays(xs[rows], pts, kq, radius)
        ok = (ii >= 0) & (new_rows[np.maximum(ii, 0)] < rows[:, None])
        # complete when k earlier ones were kept, or the query returned fewer than kq (exhausted)
        done = (ok.sum(1) >= k) | (ii[:, -1] < 0) | (kq >= new_rows.size)
        if done.any():
            di = np.where(ok[done], ii[done], -1)
            dd_ = np.where(ok[done], dd[done], np.inf)
            di, dd_ = sort_rows(di, dd_)
            out_i[rows[done]] = (
                di[:, :k]
                if di.shape[1] >= k
                else np.pad(di, ((0, 0), (0, k - di.shape[1])), constant_values=-1)
            )
            out_d[rows[done]] = (
                dd_[:, :k]
                if dd_.shape[1] >= k
                else np.pad(dd_, ((0, 0), (0, k - dd_.shape[1])), constant_values=np.inf)
            )
        rows = rows[~done]
        kq = min(2 * kq, new_rows.size)
    return out_i, out_d
