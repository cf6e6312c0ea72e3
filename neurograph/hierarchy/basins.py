"""Basins of the field: grouping tokens into fields with tensor ops (DESIGN §5).

A *field* is a set of tokens that lie in one basin of the landscape the tokens make together: where
heavy tokens crowd, the field wells of DESIGN §4 add up to a deep well, and a token rolling downhill ends
in the well of its group. :class:`BasinGrouping` finds these basins on a graph, in four steps, all
of them tensor ops on the tokens' device (no Python loop over tokens):

1. **Graph.** Each token is joined to its ``k`` nearest tokens (exact kNN in the weighted metric:
   ``scipy``'s cKDTree on the CPU, the Triton kernel or the torch reference of
   :mod:`neurograph.kernels` on CUDA), plus the *strong links* given by the caller (learned edges at
   least ``field_link_confidence`` confident), both directions.
2. **Depth.** The depth of the well at token ``i`` is estimated by its *mass density* on the graph, in
   log form (a k-nearest-neighbour density estimate that counts mass instead of points)::

       phi_i = log(m_i + sum_{j in kNN(i)} m_j) - D * log(mean_{j in kNN(i)} d_ij)      (D = 8 axes)

   Tokens are ordered by ``(phi, slot)``: a strict total order, so that equal densities never tie.
3. **Ascent.** Every token points at its graph neighbour of highest order when that is above its own;
   pointer jumping (``g <- g[g]``, about ``log2(depth)`` rounds) takes every token to the *peak* of its
   basin. Tokens sharing a peak form a basin.
4. **Merging by persistence** (ToMATo: Chazal, Guibas, Oudot, Skraba, *Persistence-based clustering in
   Riemannian manifolds*, J. ACM 2013, here in a parallel form). The *saddle* between two adjacent basins
   is the highest ``min(phi_i, phi_j)`` over the graph edges joining them. A basin whose peak rises less
   than ``persistence`` above its highest saddle toward a basin with a higher peak is merged into that
   basin (the one across its highest saddle; ties go to the higher peak). Rounds repeat until no basin
   merges, each round merging every such basin at once. Noise bumps (low persistence) disappear, while
   real groups, separated by a density valley deeper than ``persistence`` (a factor ``e^persistence`` in
   density), stay apart.

Basins with at least ``min_size`` members are the fields; members of smaller basins belong to none
(cluster -1). The result is deterministic: the same positions, masses and links give the same fields.
``persistence`` is scale-free (a log-density ratio): it means the same at every level of the hierarchy,
whatever the units of mass and distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from neurograph.kernels import knn_reference, knn_triton, triton_available
from neurograph.kernels.knn import MAX_K_TRITON
from neurograph.neighbors import knn_arrays
from neurograph.space import DIM

__all__ = ["BasinGrouping", "Basins", "ascend", "knn_graph", "mass_density", "merge_by_persistence"]

_MIN_DIST = 1e-12  # floor of the mean neighbour distance (duplicates would give log 0)
_MAX_ROUNDS = 256  # merge rounds; each merges every low-persistence basin at once (a few suffice)


@dataclass(frozen=True)
class Basins:
    """Basins of one level: the result of :class:`BasinGrouping`.

    Shapes:
        cluster ``[n]`` int64: field of each token, ``0..n_fields-1`` (ordered by peak slot), -1 none;
        peak ``[n]`` int64: the row of each token's basin peak (every token has one);
        phi ``[n]`` float32: log mass density; sizes ``[n_fields]`` int64: members per field.
    """

    cluster: Tensor
    peak: Tensor
    phi: Tensor
    sizes: Tensor
    rounds: int  # merge rounds run

    @property
    def n_fields(self) -> int:
        return int(self.sizes.numel())

    def __repr__(self) -> str:
        return f"Basins(tokens={self.cluster.numel()}, fields={self.n_fields}, rounds={self.rounds})"


@dataclass(frozen=True)
class BasinGrouping:
    """Group tokens into fields: basins of the mass density, merged by persistence (module docstring).

    The graph's degree follows the size of the level (:meth:`k_for`): ``min(k, max(min_size - 1,
    n // min_size))``. A level of ``n`` tokens holds at most ``n // min_size`` fields; a degree above that
    reaches across groups by construction. A large level of signal tokens gets the full ``k`` (a smooth
    density); a small level (fields of fields: tens of tokens) gets down to ``min_size - 1``, the degree at
    which a tight group of ``min_size`` tokens is a clique of its own, so that groups of fields are not all
    joined into one basin by a graph that spans the whole level.

    Args:
        k: most neighbours per token in the graph (``field_neighbors``).
        persistence: the rise in log mass density a basin's peak needs above its saddle to stand alone
            (``field_persistence``).
        min_size: members a basin needs to be a field (``min_field_size``).
        dim: the exponent ``D`` of the density estimate (the dimension of the space).
    """

    k: int = 16
    persistence: float = 1.0
    min_size: int = 5
    dim: float = float(DIM)

    def k_for(self, n: int) -> int:
        """The graph degree for a level of ``n`` tokens (see the class docstring)."""
        return min(self.k, max(self.min_size - 1, n // max(self.min_size, 1), 1))

    def __call__(
        self,
        pos: Tensor,
        mass: Tensor,
        scale: Tensor | None = None,
        links: Tensor | None = None,
    ) -> Basins:
        """Find the fields of ``n`` tokens.

        Args:
            pos: ``[n, 8]`` float32 positions.
            mass: ``[n]`` float32 masses (> 0).
            scale: ``[8]`` axis scales of the weighted metric (``None``: all 1).
            links: ``[2, L]`` int64 extra graph edges (rows of ``pos``), e.g. strong learned edges.

        Returns:
            The :class:`Basins`.
        """
        n = pos.shape[0]
        dev = pos.device
        if scale is None:
            scale = torch.ones(DIM, dtype=torch.float32, device=dev)
        if n == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            return Basins(empty, empty, torch.zeros(0, device=dev), empty, 0)
        idx, dist = knn_graph(pos, min(self.k_for(n), n - 1), scale)  # (n, k) rows, -1 padded
        phi = mass_density(mass, idx, dist, self.dim)  # (n,)
        order = _total_order(phi)  # (n,) rank of each token by (phi, row)
        src, dst = _edge_list(idx, links, n)  # (E,) both directions
        peak = ascend(order, src, dst)
        peak, rounds = merge_by_persistence(peak, phi, order, src, dst, self.persistence)
        cluster, sizes = _clusters(peak, self.min_size)
        return Basins(cluster, peak, phi, sizes, rounds)


def knn_graph(pos: Tensor, k: int, scale: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's ``k`` nearest other rows in the weighted metric (exact, nearest first).

    Shapes:
        pos ``[n, 8]``, scale ``[8]`` -> ``(idx [n, k] int64 (-1 padded), dist [n, k] float32 (inf))``.
    """
    n, dev = pos.shape[0], pos.device
    if k <= 0:
        return torch.full((n, 0), -1, dtype=torch.int64, device=dev), torch.zeros((n, 0), device=dev)
    if dev.type == "cpu":
        x = pos.detach().double().numpy() * np.sqrt(scale.double().numpy())  # (n, 8) scaled
        idx, dist = knn_arrays(x, x, k, math.inf, exclude_self=True)
        return torch.from_numpy(idx), torch.from_numpy(dist.astype(np.float32))
    rows = torch.arange(n, device=dev)
    p = pos.float().contiguous()
    s = scale.float().to(dev)
    if k <= MAX_K_TRITON and triton_available():
        dist, idx = knn_triton(p, p, k, math.inf, s, exclude=rows)
    else:
        dist, idx = knn_reference(p, p, k, math.inf, s, exclude=rows)
    return idx, dist


def mass_density(mass: Tensor, idx: Tensor, dist: Tensor, dim: float = float(DIM)) -> Tensor:
    """Log mass density ``log(m_i + sum_j m_j) - dim * log(mean_j d_ij)`` over each row's neighbours.

    Shapes:
        mass ``[n]``, idx ``[n, k]`` (-1 padded), dist ``[n, k]`` -> ``[n]`` float32.
    """
    valid = idx >= 0  # (n, k)
    m = mass.float()
    nbr_mass = torch.where(valid, m[idx.clamp_min(0)], 0.0).sum(1)  # (n,)
    count = valid.sum(1)
    mean_d = torch.where(valid, dist.float(), 0.0).sum(1) / count.clamp_min(1)  # (n,)
    mean_d = torch.where(count > 0, mean_d, torch.ones_like(mean_d)).clamp_min(_MIN_DIST)
    return torch.log(m + nbr_mass) - dim * torch.log(mean_d)


def ascend(order: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """Steepest ascent on the graph: the peak row every row climbs to (pointer jumping).

    Args:
        order: ``[n]`` int64 distinct ranks (higher = denser).
        src, dst: ``[E]`` int64 directed graph edges.

    Returns:
        ``[n]`` int64 peak row of each row.
    """
    n = order.shape[0]
    rows = torch.arange(n, device=order.device)
    best = torch.full((n,), -1, dtype=torch.int64, device=order.device)
    if src.numel():
        best = best.scatter_reduce(0, src, order[dst], reduce="amax")  # (n,) best neighbour rank
    by_rank = torch.empty_like(order)
    by_rank[order] = rows  # row of each rank
    up = best > order
    g = torch.where(up, by_rank[best.clamp_min(0)], rows)  # (n,) one step uphill, or stay at a peak
    return _jump(g)


def merge_by_persistence(
    peak: Tensor, phi: Tensor, order: Tensor, src: Tensor, dst: Tensor, persistence: float
) -> tuple[Tensor, int]:
    """Merge basins whose peak rises less than ``persistence`` above their highest saddle (ToMATo).

    Args:
        peak: ``[n]`` int64 peak row of each row (from :func:`ascend`).
        phi: ``[n]`` log mass density; order: ``[n]`` int64 ranks (the total order of ``phi``).
        src, dst: ``[E]`` int64 directed graph edges.
        persistence: the least rise of a standing peak.

    Returns:
        ``(peak [n] after merging, rounds run)``.
    """
    n = peak.shape[0]
    dev = peak.device
    rows = torch.arange(n, device=dev)
    by_rank = torch.empty_like(order)
    by_rank[order] = rows
    saddle_all = torch.minimum(phi[src], phi[dst])  # (E,) the lower end of each edge
    rounds = 0
    while rounds < _MAX_ROUNDS:
        a, b = peak[src], peak[dst]  # (E,) basins at both ends
        between = a != b  # edges inside one basin never matter again: merged basins stay merged
        src, dst, saddle_all, a, b = src[between], dst[between], saddle_all[between], a[between], b[between]
        up = order[b] > order[a]  # edge from a lower-peaked basin into a higher one
        a, b, s = a[up], b[up], saddle_all[up]
        if a.numel() == 0:
            break
        best_s = torch.full((n,), -math.inf, device=dev).scatter_reduce(0, a, s, reduce="amax")  # (n,)
        at_best = s == best_s[a]
        target = torch.full((n,), -1, dtype=torch.int64, device=dev)
        target = target.scatter_reduce(0, a[at_best], order[b[at_best]], reduce="amax")  # (n,) rank
        merge = (target >= 0) & (phi - best_s < persistence)  # indexed by peak row
        rounds += 1
        if not bool(merge.any()):
            break
        g = torch.where(merge, by_rank[target.clamp_min(0)], rows)
        peak = _jump(g)[peak]
    return peak, rounds


def _total_order(phi: Tensor) -> Tensor:
    """Rank of each row by ``(phi, row)``: distinct ranks ``0..n-1``."""
    n = phi.shape[0]
    perm = torch.argsort(phi, stable=True)  # rows by phi, ties by row
    order = torch.empty(n, dtype=torch.int64, device=phi.device)
    order[perm] = torch.arange(n, device=phi.device)
    return order


def _edge_list(idx: Tensor, links: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
    """Directed edges (both directions) of the kNN table plus the links."""
    k = idx.shape[1]
    src = torch.arange(n, device=idx.device).repeat_interleave(k)  # (n k,)
    dst = idx.reshape(-1)
    keep = dst >= 0
    src, dst = src[keep], dst[keep]
    if links is not None and links.numel():
        lk = links.to(idx.device).long()
        src = torch.cat([src, lk[0]])
        dst = torch.cat([dst, lk[1]])
    return torch.cat([src, dst]), torch.cat([dst, src])


def _jump(g: Tensor) -> Tensor:
    """Follow pointers to their roots (``g[root] == root``) by pointer jumping."""
    while True:
        nxt = g[g]
        if torch.equal(nxt, g):
            return g
        g = nxt


def _clusters(peak: Tensor, min_size: int) -> tuple[Tensor, Tensor]:
    """Consecutive field numbers for basins of at least ``min_size`` rows (-1 for the others)."""
    _, inverse, counts = torch.unique(peak, return_inverse=True, return_counts=True)  # by peak row
    big = counts >= min_size
    number = torch.cumsum(big.long(), 0) - 1  # field number of each big basin
    cluster = torch.where(big[inverse], number[inverse], torch.full_like(inverse, -1))
    return cluster, counts[big]
