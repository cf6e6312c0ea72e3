"""Exact nearest-neighbour search over the alive level-0 tokens.

A query asks, for each of Q vectors, for the up-to-``k`` *indexable* tokens (alive, level 0) within
``radius`` of it, nearest first, ties broken by slot (slot order is id order), optionally excluding one
slot per query (a token is never its own neighbour). Results are ``(slots [Q, k] int64, dist [Q, k])``
padded with ``-1`` / ``inf``. Distances use the weighted metric of :mod:`neurograph.space`; working in
scaled coordinates ``x * sqrt(s)`` makes it plain Euclidean.

Backends (``NeighborIndex(backend=...)``):

``tree`` (CPU default)
    ``scipy.spatial.cKDTree`` over the *bulk* of the tokens plus a small *buffer* of tokens inserted or
    moved since the tree was built, so that an emit never rebuilds the tree. Tokens that moved or died
    stay in the tree but are *dirty*: their tree hits are dropped, and the tree is asked for a few more
    than ``k`` candidates so that ``k`` clean ones remain (rows where that was not enough are asked again
    with twice the count). The buffer is searched by brute force (small) or by a throw-away tree (large
    batches). The tree is rebuilt when the buffer or the dirty set outgrows a fraction of the bulk, and
    lazily after ``invalidate()`` (dynamics moved everything).
``brute``
    The eager torch reference of :mod:`neurograph.kernels` over every indexable token (any device).
``triton``
    The fused Triton kernel of :mod:`neurograph.kernels` (CUDA): distances in registers, running top-k.
    Positions can change freely: there is nothing to rebuild.

All backends return the same slots; distances agree to 1e-5 relative (the tree works in float64, the
kernels in float32 by direct differences).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import torch
from scipy.spatial import cKDTree

from neurograph.kernels import knn_reference, knn_triton, triton_available
from neurograph.state import TokenState

__all__ = ["NeighborIndex", "knn_arrays", "sort_rows"]

_BRUTE_PAIRS = 262_144  # Q * N below which numpy brute force beats building a tree
_REBUILD_WORK = 25  # a tree rebuild costs about this many brute-force distance evaluations per token
_LEAFSIZE = 32  # cKDTree leaf size: measured faster than the default 16 for 8-D queries with k = 16


def knn_arrays(
    queries: np.ndarray,
    points: np.ndarray,
    k: int,
    radius: float,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of host arrays in (already scaled) Euclidean coordinates.

    Args:
        queries: ``[Q, 8]`` scaled coordinates.
        points: ``[N, 8]`` scaled coordinates.
        k: neighbours per query.
        radius: only points with ``d <= radius`` (``inf`` for none).
        exclude_self: drop ``j == q`` (queries and points are the same array).

    Returns:
        ``(idx [Q, k] int64, dist [Q, k] float64)`` sorted by (distance, index), padded ``-1`` / ``inf``.
    """
    nq, n = len(queries), len(points)
    kk = min(k + int(exclude_self), n)
    if nq == 0 or n == 0 or kk == 0:
        return np.full((nq, k), -1, np.int64), np.full((nq, k), np.inf)
    if nq * n <= _BRUTE_PAIRS:
        d = np.sqrt(((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1))  # (Q, N)
        if exclude_self:
            np.fill_diagonal(d, np.inf)
        d[d > radius] = np.inf
        if kk < n:
            cols = np.argpartition(d, kk - 1, axis=1)[:, :kk]  # (Q, kk) candidates, unordered
            cd = np.take_along_axis(d, cols, 1)
            cut = cd.max(1)
            # a row with more points tied at its cut than were kept needs the full row to break ties
            full = np.isfinite(cut) & ((d <= cut[:, None]).sum(1) > kk)
            if full.any():
                fi, fd = sort_rows(np.broadcast_to(np.arange(n), (int(full.sum()), n)).copy(), d[full])
                cols[full], cd[full] = fi[:, :kk], fd[:, :kk]
            idx, d = sort_rows(np.where(np.isfinite(cd), cols, -1), cd)
        else:
            idx, d = sort_rows(np.where(np.isfinite(d), np.arange(n), -1), d)
        return _pad(idx[:, :k], d[:, :k], k)
    tree = cKDTree(points, leafsize=_LEAFSIZE, balanced_tree=False)
    return _tree_query(tree, np.arange(n), queries, k, radius, None if not exclude_self else np.arange(nq))


def sort_rows(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (distance, index); entries with ``idx == -1`` go last.

    Shapes:
        idx, dist ``[Q, m]`` -> same.
    """
    if idx.size == 0:
        return idx, dist
    dist = np.where(idx < 0, np.inf, dist)
    idx_key = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.argsort(idx_key, axis=1, kind="stable")
    idx_s = np.take_along_axis(idx, order, 1)
    dist_s = np.take_along_axis(dist, order, 1)
    order = np.argsort(dist_s, axis=1, kind="stable")
    return np.take_along_axis(idx_s, order, 1), np.take_along_axis(dist_s, order, 1)


def _pad(idx: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    q, m = idx.shape
    if m < k:
        idx = np.concatenate([idx, np.full((q, k - m), -1, np.int64)], 1)
        dist = np.concatenate([dist, np.full((q, k - m), np.inf)], 1)
    idx = np.where(np.isfinite(dist), idx, -1)
    return idx.astype(np.int64, copy=False), np.where(idx >= 0, dist, np.inf)


def _tree_query(
    tree: cKDTree,
    labels: np.ndarray,
    queries: np.ndarray,
    k: int,
    radius: float,
    exclude: np.ndarray | None,
    clean: np.ndarray | None = None,
    margin: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Query ``tree`` (points labelled ``labels``), dropping excluded and unclean labels, exactly.

    Rows whose every candidate was used while some were dropped are asked again with twice as many, and so
    are rows whose k-th kept neighbour ties with the next: cKDTree returns an arbitrary subset of the
    points at equal distance at its cut-off, so a row is complete only when a candidate strictly farther
    than its k-th was seen (or the tree had no more). Ties are then ordered by label, on every backend.
    """
    n = tree.n
    nq = len(queries)
    bound = np.nextafter(radius, np.inf) if math.isfinite(radius) else np.inf
    out_idx = np.full((nq, k), -1, np.int64)
    out_d = np.full((nq, k), np.inf)
    rows = np.arange(nq)
    kq = min(n, k + 1 + margin + (exclude is not None))  # one more: is the k-th tied with the next?
    while rows.size:
        d, j = tree.query(queries[rows], k=max(kq, 1), distance_upper_bound=bound, workers=-1)
        d = d.reshape(rows.size, -1)
        j = j.reshape(rows.size, -1)
        found = j < n
        lab = np.where(found, labels[np.minimum(j, n - 1)], -1)
        keep = found & (d <= radius)
        if exclude is not None:
            keep &= lab != exclude[rows, None]
        if clean is not None:
            keep &= clean[np.maximum(lab, 0)]
        lab = np.where(keep, lab, -1)
        d = np.where(keep, d, np.inf)
        # a row is complete when the tree had nothing more to give within the bound, or when it kept more
        # than k and the (k+1)-th kept lies strictly farther than the k-th (no tie hides beyond the cut)
        exhausted = ~found[:, -1] | (kq >= n)
        kept = np.sort(d, axis=1)  # (r, kq) kept distances ascending, inf for the dropped
        if kept.shape[1] > k:
            clear = np.isfinite(kept[:, k]) & (kept[:, k] > kept[:, k - 1])
        else:
            clear = np.zeros(rows.size, bool)
        done = clear | exhausted
        if done.any():
            li, ld = lab[done], d[done]
            if exclude is not None or clean is not None:
                # dropping entries keeps the distance order: a stable compaction, not a sort
                order = np.argsort(li < 0, axis=1, kind="stable")
                li, ld = np.take_along_axis(li, order, 1), np.take_along_axis(ld, order, 1)
            # cKDTree sorts by distance only: fix exact ties by index, on the rows that have some
            fin = np.isfinite(ld)
            tie_rows = ((ld[:, 1:] == ld[:, :-1]) & fin[:, 1:]).any(1)
            if tie_rows.any():
                li[tie_rows], ld[tie_rows] = sort_rows(li[tie_rows], ld[tie_rows])
            li, ld = _pad(li[:, :k], ld[:, :k], k)
            out_idx[rows[done]] = li
            out_d[rows[done]] = ld
        rows = rows[~done]
        kq = min(n, 2 * kq)
    return out_idx, out_d


class NeighborIndex:
    """Exact kNN over the indexable (alive, level-0) tokens of a :class:`TokenState`.

    Args:
        tokens: the token store (read for positions, alive and level).
        scale: ``[8]`` axis scales of the metric.
        backend: ``"auto"`` (``tree`` on CPU, ``triton`` on CUDA when available, else ``brute``),
            ``"tree"``, ``"brute"`` or ``"triton"``.
        rebuild_fraction: rebuild the tree when buffer + dirty exceed this fraction of the bulk.
    """

    def __init__(
        self,
        tokens: TokenState,
        scale: np.ndarray | tuple[float, ...],
        backend: str = "auto",
        rebuild_fraction: float = 0.25,
    ) -> None:
        if backend == "auto":
            if tokens.device.type == "cpu":
                backend = "tree"
            else:
                backend = "triton" if triton_available() else "brute"
        if backend not in ("tree", "brute", "triton"):
            raise ValueError(f"backend must be 'auto', 'tree', 'brute' or 'triton'; got {backend!r}")
        if backend == "tree" and tokens.device.type != "cpu":
            raise ValueError("backend 'tree' needs a CPU store; use 'triton' or 'brute' on CUDA")
        self.tokens = tokens
        self.backend = backend
        self.rebuild_fraction = rebuild_fraction
        self.rebuilds = 0
        self.set_scale(scale)

    def __repr__(self) -> str:
        bulk = 0 if self._tree is None else self._tree.n
        return (
            f"NeighborIndex(backend={self.backend!r}, bulk={bulk}, buffer={self._buf_len()}, "
            f"dirty={self._dirty}, rebuilds={self.rebuilds})"
        )

    # --- membership notifications -------------------------------------------------------------------
    def set_scale(self, scale: np.ndarray | tuple[float, ...]) -> None:
        """Change the metric (forces a rebuild)."""
        self.scale = np.asarray(scale, dtype=np.float64)
        self._sqrt_scale = np.sqrt(self.scale)
        self._scale_t = torch.as_tensor(self.scale, dtype=torch.float32, device=self.tokens.device)
        self.invalidate()

    def invalidate(self) -> None:
        """Positions may have changed anywhere (after dynamics): rebuild lazily before the next query."""
        self._tree: cKDTree | None = None
        self._tree_slots = np.zeros(0, np.int64)
        self._clean = np.zeros(0, bool)  # per slot: in the tree with its current position
        self._dirty = 0
        # the buffer: slots, their scaled positions, and each slot's row in it (-1: not in the buffer)
        self._buf_slots = np.zeros(64, np.int64)
        self._buf_pts = np.zeros((64, 8))
        self._buf_sq = np.zeros(64)  # squared norm of each buffer row (the single query's pre-filter)
        self._buf_sq_max = 0.0  # an upper bound of _buf_sq (scales the pre-filter's tolerance)
        self._buf_row = np.zeros(0, np.int64)
        self._buf_n = 0
        self._buf_work = 0  # distance evaluations spent brute-forcing the buffer since the last rebuild

    def add(self, slots: np.ndarray) -> None:
        """New indexable tokens."""
        if self.backend != "tree" or self._tree is None or len(slots) == 0:
            return
        self._grow_masks()
        self._buf_put(np.asarray(slots, np.int64))

    def moved(self, slots: np.ndarray) -> None:
        """Tokens whose positions changed (they move from the tree into the buffer)."""
        if self.backend != "tree" or self._tree is None or len(slots) == 0:
            return
        self._grow_masks()
        slots = np.asarray(slots, np.int64)
        if slots.size == 1:  # the single-emit path: plain scalar bookkeeping
            slot = int(slots[0])
            if self._clean[slot]:
                self._clean[slot] = False
                self._dirty += 1
            row = self._buf_row[slot]
            if row >= 0:
                pt = self.tokens.np("pos")[slot] * self._sqrt_scale
                self._buf_pts[row] = pt
                self._buf_sq[row] = sq = float(pt @ pt)
                self._buf_sq_max = max(self._buf_sq_max, sq)
                return
        clean = self._clean[slots]
        if clean.any():
            self._dirty += int(np.unique(slots[clean]).size)
            self._clean[slots] = False
        self._buf_put(slots)

    def remove(self, slots: np.ndarray) -> None:
        """Tokens that died or stopped being indexable."""
        if self.backend != "tree" or self._tree is None or len(slots) == 0:
            return
        self._grow_masks()
        slots = np.unique(np.asarray(slots, np.int64))
        self._dirty += int(self._clean[slots].sum())
        self._clean[slots] = False
        for slot in slots[self._buf_row[slots] >= 0].tolist():  # swap-remove from the buffer
            row = self._buf_row[slot]
            last = self._buf_n - 1
            moved_slot = self._buf_slots[last]
            self._buf_slots[row] = moved_slot
            self._buf_pts[row] = self._buf_pts[last]
            self._buf_sq[row] = self._buf_sq[last]
            self._buf_row[moved_slot] = row
            self._buf_row[slot] = -1
            self._buf_n = last

    def _buf_put(self, slots: np.ndarray) -> None:
        """Insert or refresh buffer rows with the tokens' current (scaled) positions."""
        if slots.size == 1 and self._buf_row[slots[0]] < 0 and self._buf_n < self._buf_slots.shape[0]:
            slot, n = int(slots[0]), self._buf_n  # one new token (the single-emit path)
            pt = self.tokens.np("pos")[slot] * self._sqrt_scale
            self._buf_slots[n] = slot
            self._buf_pts[n] = pt
            self._buf_sq[n] = sq = float(pt @ pt)
            self._buf_sq_max = max(self._buf_sq_max, sq)
            self._buf_row[slot] = n
            self._buf_n = n + 1
            return
        pts = self.tokens.np("pos")[slots].astype(np.float64) * self._sqrt_scale
        rows = self._buf_row[slots]
        present = rows >= 0
        sq = (pts * pts).sum(1)
        self._buf_sq_max = max(self._buf_sq_max, float(sq.max()))
        if present.any():
            self._buf_pts[rows[present]] = pts[present]
            self._buf_sq[rows[present]] = sq[present]
        if present.all():
            return
        new_slots, first = np.unique(slots[~present], return_index=True)
        new_pts = pts[~present][first]
        n, m = self._buf_n, new_slots.size
        if n + m > self._buf_slots.shape[0]:
            cap = max(2 * self._buf_slots.shape[0], n + m)
            self._buf_slots = np.resize(self._buf_slots, cap)
            self._buf_pts = np.resize(self._buf_pts, (cap, 8))
            self._buf_sq = np.resize(self._buf_sq, cap)
        self._buf_slots[n : n + m] = new_slots
        self._buf_pts[n : n + m] = new_pts
        self._buf_sq[n : n + m] = sq[~present][first]
        self._buf_row[new_slots] = np.arange(n, n + m)
        self._buf_n = n + m

    # --- queries ------------------------------------------------------------------------------------
    def knn(
        self,
        queries: np.ndarray | torch.Tensor,
        k: int,
        radius: float = math.inf,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` nearest indexable tokens within ``radius`` of each query.

        Args:
            queries: ``[Q, 8]`` positions (unscaled).
            k: neighbours per query.
            radius: distance bound (inclusive).
            exclude: ``[Q]`` slot to skip per query (``-1`` for none).

        Returns:
            ``(slots [Q, k] int64, dist [Q, k] float64)`` as host arrays, sorted by (distance, slot).
        """
        if self.backend == "tree":
            q = np.asarray(queries.cpu() if isinstance(queries, torch.Tensor) else queries, np.float64)
            return self._knn_tree(q * self._sqrt_scale, k, radius, exclude)
        slots, dist = self.knn_tensor(queries, k, radius, exclude)
        return slots.cpu().numpy(), dist.double().cpu().numpy()

    def knn_one(self, x: np.ndarray, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`knn` for one query, without padding: ``(slots [m], dist [m])``, ``m <= k``.

        On the tree backend this skips the batch machinery: one cKDTree query, whose few hits are handled
        as Python lists, and a pass over the buffer that pre-selects rows by ``|p|^2 - 2 p.x`` (one
        matrix-vector product) before computing the distances of the few candidates exactly as
        :func:`knn_arrays` does. Other backends delegate to :meth:`knn`.
        """
        if self.backend != "tree":
            s, d = self.knn(x[None, :], k, radius)
            keep = s[0] >= 0
            return s[0][keep], d[0][keep]
        xs = x.astype(np.float64) * self._sqrt_scale
        self._maybe_rebuild(1)
        tree = self._tree
        dist: list[float] = []
        slots: list[int] = []
        if tree is not None and tree.n:
            n = tree.n
            dirty = self._dirty
            margin = 0
            if dirty:
                frac = dirty / n
                margin = math.ceil(2 * k * frac / max(1 - frac, 1e-3)) + 2
            kq = min(n, k + 1 + margin)  # one more than k: it shows whether a tie runs past the k-th
            bound = np.nextafter(radius, np.inf) if math.isfinite(radius) else np.inf
            # ascending, misses padded with (inf, n); k = [1] keeps a 1-D answer for a single neighbour
            d, j = tree.query(xs, k=kq if kq > 1 else [1], distance_upper_bound=bound)
            dl = d.tolist()
            found = bisect.bisect_left(dl, math.inf)
            if dirty and found == kq < n:
                clean = self._clean[self._tree_slots[j]]
                if int(clean.sum()) < k:  # dirty hits ate too many candidates: take the general path
                    s, dd = self._knn_tree(xs[None, :], k, radius, None)
                    keep = s[0] >= 0
                    return s[0][keep], dd[0][keep]
            m = bisect.bisect_right(dl, radius, 0, found)
            if m:
                hit = self._tree_slots[j[:m]]
                if dirty:
                    keep = self._clean[hit]
                    hit = hit[keep]
                    dist = [dv for dv, c in zip(dl, keep.tolist()) if c]
                else:
                    dist = dl[:m]
                slots = hit.tolist()
            if found == kq < n and len(dist) >= k and dist[k - 1] == dl[kq - 1]:
                # the k-th neighbour ties with every candidate the tree gave: more may tie beyond them,
                # and ties go by slot, not by the tree's order; the general path collects them all
                s, dd = self._knn_tree(xs[None, :], k, radius, None)
                keep = s[0] >= 0
                return s[0][keep], dd[0][keep]
        b = self._buf_n
        if b:
            if math.isfinite(radius):
                # |p - x|^2 = |p|^2 - 2 p.x + |x|^2, with a tolerance far above its rounding error
                xq = float(xs @ xs)
                lim = radius * radius - xq + 1e-9 * (1.0 + xq + self._buf_sq_max)
                near = np.nonzero(self._buf_sq[:b] - 2.0 * (self._buf_pts[:b] @ xs) <= lim)[0]
            else:
                near = np.arange(b)
            if near.size:
                diff = self._buf_pts[near] - xs  # (c, 8)
                bd = np.sqrt((diff**2).sum(-1))  # the same reduction as knn_arrays, bit for bit
                sel = bd <= radius
                if sel.any():
                    dist = dist + bd[sel].tolist()
                    slots = slots + self._buf_slots[near[sel]].tolist()
        if len(slots) > 1:  # by (distance, slot), as the batch path sorts
            pairs = sorted(zip(dist, slots))[:k]
            return np.array([p[1] for p in pairs], np.int64), np.array([p[0] for p in pairs])
        return np.array(slots, np.int64), np.array(dist)

    def knn_tensor(
        self,
        queries: np.ndarray | torch.Tensor,
        k: int,
        radius: float = math.inf,
        exclude: np.ndarray | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`knn` but returns tensors on the store's device (``dist`` float32)."""
        t = self.tokens
        if self.backend == "tree":
            s, d = self.knn(queries, k, radius, None if exclude is None else np.asarray(exclude))
            return torch.from_numpy(s), torch.from_numpy(d.astype(np.float32))
        q = torch.as_tensor(queries, dtype=torch.float32).to(t.device)
        n = t.count
        valid = t.alive[:n] & (t.level[:n] == 0)
        exc = None if exclude is None else torch.as_tensor(exclude, dtype=torch.int64).to(t.device)
        fn = knn_triton if self.backend == "triton" else knn_reference
        dist, idx = fn(q, t.pos[:n], k, radius, self._scale_t, valid=valid, exclude=exc)
        return idx, dist

    # --- tree backend -------------------------------------------------------------------------------
    def _knn_tree(
        self, q: np.ndarray, k: int, radius: float, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        nq = len(q)
        self._maybe_rebuild(nq)
        if exclude is not None:
            exclude = np.asarray(exclude, np.int64)
        parts_i, parts_d = [], []
        if self._tree is not None and self._tree.n:
            bulk = len(self._tree_slots)
            frac = self._dirty / max(bulk, 1)
            margin = 0 if self._dirty == 0 else math.ceil(2 * k * frac / max(1 - frac, 1e-3)) + 2
            idx, d = _tree_query(
                self._tree,
                self._tree_slots,
                q,
                k,
                radius,
                exclude,
                clean=self._clean if self._dirty else None,
                margin=margin,
            )
            parts_i.append(idx)
            parts_d.append(d)
        buf = self._buf_slots[: self._buf_n]
        if buf.size:
            bi, bd = knn_arrays(q, self._buf_pts[: self._buf_n], k + (exclude is not None), radius)
            bi = np.where(bi >= 0, buf[np.maximum(bi, 0)], -1)
            if exclude is not None:
                bd = np.where(bi == exclude[:, None], np.inf, bd)
                bi = np.where(bi == exclude[:, None], -1, bi)
            parts_i.append(bi)
            parts_d.append(bd)
        if not parts_i:
            return np.full((nq, k), -1, np.int64), np.full((nq, k), np.inf)
        if len(parts_i) == 1:
            return _pad(parts_i[0][:, :k], parts_d[0][:, :k], k)
        idx = np.concatenate(parts_i, 1)
        d = np.concatenate(parts_d, 1)
        # only rows where the buffer contributed need a merge sort
        mix = (parts_i[1] >= 0).any(1)
        out_i, out_d = parts_i[0][:, :k].copy(), parts_d[0][:, :k].copy()
        if mix.any():
            mi, md = sort_rows(idx[mix], d[mix])
            out_i[mix], out_d[mix] = mi[:, :k], md[:, :k]
        return _pad(out_i, out_d, k)

    def _buf_len(self) -> int:
        return 0 if self._tree is None else self._buf_n

    def _grow_masks(self) -> None:
        cap = self.tokens.capacity
        if self._clean.shape[0] < cap:
            self._clean = np.concatenate([self._clean, np.zeros(cap - self._clean.shape[0], bool)])
        if self._buf_row.shape[0] < cap:
            self._buf_row = np.concatenate(
                [self._buf_row, np.full(cap - self._buf_row.shape[0], -1, np.int64)]
            )

    def _maybe_rebuild(self, nq: int) -> None:
        """Rebuild the tree when keeping the buffer has cost more than a rebuild would (ski rental).

        Small queries brute-force the buffer: each costs about ``nq * buffer`` distance evaluations, a
        rebuild about ``_REBUILD_WORK`` evaluations per indexed token. The work spent on the buffer since
        the last rebuild is summed, and once it exceeds the cost of a rebuild the tree is rebuilt; large
        batches search the buffer with a throw-away tree instead, and rebuild when the pending set (buffer
        and dirty tokens) outgrows ``rebuild_fraction`` of the bulk.
        """
        if self._tree is not None:
            bulk = max(len(self._tree_slots), 1)
            buf = self._buf_len()
            if nq * buf <= _BRUTE_PAIRS:
                self._buf_work += nq * buf
            pending = buf + self._dirty
            if pending <= max(2048, self.rebuild_fraction * bulk) and self._buf_work <= _REBUILD_WORK * bulk:
                return
        self.rebuild()

    def rebuild(self) -> None:
        """Build the tree over every indexable token (the buffer and the dirty set empty)."""
        t = self.tokens
        n = t.count
        alive = t.np("alive")[:n] & (t.np("level")[:n] == 0)
        slots = np.nonzero(alive)[0].astype(np.int64)
        pts = t.np("pos")[slots].astype(np.float64) * self._sqrt_scale
        self._tree = cKDTree(pts, leafsize=_LEAFSIZE, balanced_tree=False, compact_nodes=False)
        self._tree_slots = slots
        self._clean = np.zeros(t.capacity, bool)
        self._clean[slots] = True
        self._buf_row = np.full(t.capacity, -1, np.int64)
        self._buf_n = 0
        self._buf_sq_max = 0.0
        self._buf_work = 0
        self._dirty = 0
        self.rebuilds += 1

    # --- tensor queries for the batch emit path (results stay on the store's device) ----------------
    def knn_tensors(self, queries: torch.Tensor, k: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`knn` for queries already on the store's device, answered there.

        The tree backend answers on the host (the CPU *is* the device; the arrays come back as tensors
        without a copy); the other backends run on the device without a host sync of their own beyond
        what their kernel needs (:func:`~neurograph.kernels.knn_triton` needs none).

        Args:
            queries: ``[Q, 8]`` float32 positions (unscaled) on the store's device.
            k: neighbours per query.
            radius: distance bound (inclusive).

        Returns:
            ``(slots [Q, k] int64, dist [Q, k] float64)`` on the store's device, sorted by (distance,
            slot), padded with ``-1`` / ``inf``.
        """
        if self.backend == "tree":
            s, d = self.knn(queries.numpy(), k, radius)
            return torch.from_numpy(s), torch.from_numpy(d)
        slots, dist = self.knn_tensor(queries, k, radius)
        return slots, dist.double()

    def knn_earlier(
        self,
        queries: torch.Tensor,
        k: int,
        radius: float,
        points: torch.Tensor,
        ask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbours *among the rows of one batch*: for each row ``j``, the up-to-``k`` nearest rows
        ``i < j`` with ``points[i]`` within ``radius``, nearest first (ties by row).

        This is the in-batch half of sequential semantics (:mod:`neurograph.emit.novelty`): a signal only
        sees the signals before it. Same metric as :meth:`knn`. On the CPU the host searches the scaled
        rows with :func:`knn_arrays` (a throw-away tree for large batches), asking for more candidates
        where later rows crowded out earlier ones; on other devices a brute-force pass over the batch in
        chunks, with the exact ``(distance, row)`` order of packed int64 keys, runs without a host sync.

        Args:
            queries: ``[B, 8]`` float32 positions (unscaled) of the batch, on the store's device.
            k: neighbours per row.
            radius: distance bound (inclusive).
            points: ``[B]`` bool, the rows that may be found.
            ask: ``[B]`` bool, the rows whose neighbours are wanted (``None``: every row); the others
                come back empty.

        Returns:
            ``(rows [B, k] int64, dist [B, k] float64)`` on the store's device, ``-1`` / ``inf`` padded.
        """
        if queries.device.type == "cpu":
            xs = queries.numpy().astype(np.float64) * self._sqrt_scale  # (B, 8) scaled
            idx, dist = _earlier_host(xs, k, radius, points.numpy(), None if ask is None else ask.numpy())
            return torch.from_numpy(idx), torch.from_numpy(dist)
        return _earlier_device(queries, self._scale_t, k, radius, points, ask)


def _earlier_host(
    xs: np.ndarray, k: int, radius: float, points: np.ndarray, ask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`NeighborIndex.knn_earlier` on host arrays of scaled coordinates ``xs [B, 8]``."""
    b = len(xs)
    out_i = np.full((b, k), -1, np.int64)
    out_d = np.full((b, k), np.inf)
    prow = np.nonzero(points)[0]  # (P,) rows that may be found, ascending
    if prow.size == 0 or k == 0:
        return out_i, out_d
    rows = np.arange(b) if ask is None else np.nonzero(ask)[0]
    rows = rows[rows > prow[0]]  # a row at or before the first point has no earlier one
    pts = xs[prow]
    kq = min(k + 1, prow.size)
    while rows.size:
        ii, dd = knn_arrays(xs[rows], pts, kq, radius)  # (R, kq) point-local, sorted
        ok = (ii >= 0) & (prow[np.maximum(ii, 0)] < rows[:, None])
        # complete when k earlier ones were kept, or the query returned fewer than kq (exhausted)
        done = (ok.sum(1) >= k) | (ii[:, -1] < 0) | (kq >= prow.size)
        if done.any():
            # dropping later rows keeps the (distance, row) order: a stable compaction, not a sort
            di = np.where(ok[done], prow[np.maximum(ii[done], 0)], -1)
            dd_ = np.where(ok[done], dd[done], np.inf)
            order = np.argsort(di < 0, axis=1, kind="stable")
            di, dd_ = np.take_along_axis(di, order, 1), np.take_along_axis(dd_, order, 1)
            di, dd_ = _pad(di[:, :k], dd_[:, :k], k)
            out_i[rows[done]] = di
            out_d[rows[done]] = dd_
        rows = rows[~done]
        kq = min(2 * kq, prow.size)
    return out_i, out_d


_CHUNK_PAIRS = 1 << 24  # brute-force in-batch search: about this many (row, row) pairs per chunk
_NO_KEY = torch.iinfo(torch.int64).max


def _earlier_device(
    x: torch.Tensor,
    scale: torch.Tensor,
    k: int,
    radius: float,
    points: torch.Tensor,
    ask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`NeighborIndex.knn_earlier` by brute force on the device (no host sync).

    Distances are computed as :func:`~neurograph.kernels.knn_reference` computes them (fp32 direct
    differences summed axis by axis, correctly rounded root), so they compare exactly with the resident
    neighbours'. Each candidate becomes the int64 key ``(distance bits << 32) | row`` (a non-negative
    float's bits sort as its value), so one ``topk`` gives the exact ``(distance, row)`` order.
    """
    b = x.shape[0]
    dev = x.device
    out_i = torch.full((b, k), -1, dtype=torch.int64, device=dev)
    out_d = torch.full((b, k), math.inf, dtype=torch.float64, device=dev)
    kk = min(k, b)
    if kk == 0:
        return out_i, out_d
    cols = torch.arange(b, device=dev)
    chunk = max(1, _CHUNK_PAIRS // b)
    for start in range(0, b, chunk):
        stop = min(start + chunk, b)
        q = x[start:stop]  # (c, 8)
        d2 = None
        for i in range(x.shape[1]):
            diff = q[:, i, None] - x[None, :, i]  # (c, B)
            term = diff * diff * scale[i]
            d2 = term if d2 is None else d2 + term
        d = d2.double().sqrt().float()  # (c, B) correctly rounded, as the kNN kernels
        ok = (d <= radius) & points[None, :] & (cols[None, :] < cols[start:stop, None])  # (c, B)
        if ask is not None:
            ok &= ask[start:stop, None]
        key = (d.view(torch.int32).to(torch.int64) << 32) | cols[None, :]  # (c, B)
        key = torch.where(ok, key, _NO_KEY)
        top = torch.topk(key, kk, dim=1, largest=False, sorted=True).values  # (c, kk)
        found = top != _NO_KEY
        out_i[start:stop, :kk] = torch.where(found, top & 0xFFFFFFFF, -1)
        dist = (top >> 32).to(torch.int32).view(torch.float32).double()  # (c, kk)
        out_d[start:stop, :kk] = torch.where(found, dist, math.inf)
    return out_i, out_d
