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

       phi_i = log M_i - D * log(r_i),   M_i = m_i + sum_{j in kNN(i)} m_j,   r_i = mean_{j in kNN(i)} d_ij

   (``D = 8`` axes). Tokens are ordered by ``(phi, slot)``: a strict total order, so that equal densities
   never tie.
3. **Saddles.** An edge is as high as the density along it: ToMATo's ``min(phi_i, phi_j)``, except for
   an edge that reaches beyond one end's own neighbourhood. A kNN edge ``(i, j)`` is among ``i``'s ``k``
   nearest; when it is not among ``j``'s (``d_ij`` beyond ``j``'s ``k``-th neighbour distance), it crosses
   thinner ground than ``j``'s neighbourhood, and is no higher than the density ``j`` would have if that
   edge's length were its mean neighbour distance::

       w_ij = min(phi_i, phi_j - D * log(d_ij / r_j))      (only where d_ij > d_k(j); else min(phi_i, phi_j))

   (a one-sided form of HDBSCAN's mutual reachability ``max(r_i, r_j, d_ij)``, in log density). A strong
   link gets ``min(phi_i, phi_j)`` whatever its length. In a dense level few edges are one-sided and
   the change is small; in a sparse one (fields of fields: a few tokens per group) the one kNN edge from
   a group to the nearest token of another is one-sided and long, its saddle low, so the groups stay
   apart.
4. **Persistence** (ToMATo: Chazal, Guibas, Oudot, Skraba, *Persistence-based clustering in Riemannian
   manifolds*, J. ACM 2013). The 0-dimensional persistence diagram of the superlevel sets of this graph
   (:mod:`neurograph.hierarchy.persistence`, exact, in parallel rounds): every peak's persistence is how
   far it rises above the saddle at which it meets a higher peak (the highest peak of a connected
   component: infinite). A threshold ``tau`` is chosen (``rule``: ``"fixed"``: ``tau = persistence``;
   ``"gap"``: the middle of the widest gap of the diagram, at least ``persistence``); peaks of persistence
   at least ``tau`` stand, every other peak joins the basin across the edge where it dies, every token
   that is no peak the neighbour it climbs to. Noise bumps (low persistence) disappear, while real
   groups, separated by a density valley deeper than ``tau`` (a factor ``e^tau`` in density), stay apart;
   disconnected groups never merge.

**Fields of fields** (``of_fields=True``: the levels above the first, whose tokens are fields). A level
of at most :data:`~neurograph.hierarchy.gaps.LINKAGE_MAX` fields (all but the largest hierarchies) is cut
at the finest gap of its Ward dendrogram (:func:`~neurograph.hierarchy.gaps.finest_gap_cut`: the groups
just above its tokens, a gap of at least ``jump``; groups of two fields or more), and each group's
densest field is its peak. A larger level takes the natural degrees below. A few
tokens stand for whole groups, so no single degree fits every level: a group of 4 fields inside a group
of 12 needs 3 neighbours, a degree of 7 joins it to its cousins. Each token takes its *natural degree*
(:func:`natural_neighbours`) from the gaps of its own neighbour distances ``d_1 <= ... <= d_K``
(``K = k``): the ``k`` after which its log density would fall most, ``g_k = D log(d_{k+1} / d_k)``,
when that fall is at least ``jump`` (3: in a structureless Poisson cloud ``g_k`` is exponential with
mean ``1/k``, so a fall of 3 happens by chance to about 5% of the tokens), else the level's typical
degree (the median natural degree of the tokens that have a gap, when they are more than half of the
level; else ``K``, a smooth level). A gap must leave at least two tokens outside (a group beside a lone
token is no structure). The graph keeps each token's natural neighbours only, and the steps above run
on it; a field of fields needs two children (``min(min_size, 2)``), so a group of 3 or 4 fields is a
field whatever ``min_field_size`` asks of the signal tokens, except where the whole level is one basin
(no structure found): that single field needs ``min_size`` members, as at the first level.

**Touching groups** (levels of at most 4,096 signal tokens): a basin whose own tokens show a Ward gap
of at least ``split_jump`` (8) splits there (:func:`~neurograph.hierarchy.gaps.split_at_gaps`): two
sub-groups whose points touch share a density basin but not their distances.

**Very large levels** (more than ``2 * landmarks`` signal tokens, 65,536 by default) are grouped on
32,768 landmarks that carry the mass of their cells (:mod:`~neurograph.hierarchy.landmarks`); each token
takes its landmark's field.

A basin with fewer than ``min_size`` members joins the basin it meets at its death (a group too small
to be a field is part of its neighbours'); basins with at least ``min_size`` members are the fields, and
only the members of a connected part of the graph smaller than that belong to none (cluster -1). The
result is deterministic: the same positions, masses and links give the same fields.
``persistence`` is scale-free (a log-density ratio): it means the same at every level of the hierarchy,
whatever the units of mass and distance.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from neurograph.hierarchy.gaps import LINKAGE_MAX, SPLIT_JUMP, finest_gap_cut, join_linked, split_at_gaps
from neurograph.hierarchy.landmarks import LANDMARKS, landmark_rows, nearest_landmark
from neurograph.hierarchy.persistence import RULES, cut, persistence_pairs, threshold
from neurograph.kernels import knn_reference, knn_triton, triton_available
from neurograph.kernels.knn import MAX_K_TRITON
from neurograph.neighbors import knn_arrays, sort_rows
from neurograph.space import DIM

__all__ = ["BasinGrouping", "Basins", "edge_saddles", "knn_graph", "mass_density", "natural_neighbours"]

_MIN_DIST = 1e-12  # floor of the mean neighbour distance (duplicates would give log 0)
_NOISE_EXPONENT = 0.75  # persistence floor ~ (k / k_n) ** this (BasinGrouping docstring)
_LEAF_ORDER_MIN = 4096  # levels from this many points ask the CPU kNN graph in leaf order (small: no gain)


@dataclass(frozen=True)
class Basins:
    """Basins of one level: the result of :class:`BasinGrouping`.

    Shapes:
        cluster ``[n]`` int64: field of each token, ``0..n_fields-1`` (ordered by peak row), -1 none;
        peak ``[n]`` int64: the row of the standing peak each token's basin merged into;
        phi ``[n]`` float32: log mass density; persistence ``[n]``: ``phi`` minus the height at which the
        token stops being the top of its component (0 for a token that is no peak, ``inf`` for the
        highest peak of a connected component); sizes ``[n_fields]`` int64: members per field.
    """

    cluster: Tensor
    peak: Tensor
    phi: Tensor
    sizes: Tensor
    rounds: int  # contraction rounds run
    persistence: Tensor
    threshold: float  # tau: the persistence a peak needed to stand

    @property
    def n_fields(self) -> int:
        return int(self.sizes.numel())

    def diagram(self) -> Tensor:
        """The finite persistences of the peaks (``> 0``), descending: the persistence diagram."""
        p = self.persistence
        return p[torch.isfinite(p) & (p > 0)].sort(descending=True).values

    def __repr__(self) -> str:
        return (
            f"Basins(tokens={self.cluster.numel()}, fields={self.n_fields}, rounds={self.rounds}, "
            f"threshold={self.threshold:.3g})"
        )


@dataclass(frozen=True)
class BasinGrouping:
    """Group tokens into fields: basins of the mass density, cut by persistence (module docstring).

    For the signal tokens the graph's degree follows the size of the level (:meth:`k_for`):
    ``k_n = min(k, max(min_size - 1, n // min_size))``. A level of ``n`` tokens holds at most
    ``n // min_size`` fields; a degree above that reaches across groups by construction. A large level
    gets the full ``k`` (a smooth density; from 80 tokens with the defaults), a small one down to
    ``min_size - 1``, the degree at which a tight group of ``min_size`` tokens is a clique of its own. A
    density over fewer neighbours is noisier, so the persistence a peak needs grows as the degree falls
    (:meth:`persistence_for`): ``tau_n = persistence * (k / k_n) ** 0.75``. The exponent is the smallest
    of 0.5, 0.75 and 1 with no spurious field in 40 structureless draws each of 40 to 150 tokens at degree
    ``n // 25`` (Gaussian and uniform in 8-D; 0.5 split 2.5% to 22% of them). (The degree ``n // 25``
    itself was tried: level-1 NMI on 200 topic sentences 0.51 against 0.43, but iris fell from 0.734 to
    0.653, below HDBSCAN's 0.717; not kept.) Levels of fields of fields (``of_fields``) are cut by the gaps
    of their distances instead (module docstring).

    Args:
        k: most neighbours per token in the graph (``field_neighbors``).
        persistence: the rise in log mass density a basin's peak needs above its saddle to stand alone
            (``field_persistence``; the floor of the threshold under the ``"gap"`` rule).
        min_size: members a basin needs to be a field (``min_field_size``).
        dim: the exponent ``D`` of the density estimate (the dimension of the space).
        rule: how the threshold is chosen from the persistence diagram (``field_persistence_rule``):
            ``"fixed"`` or ``"gap"`` (:func:`~neurograph.hierarchy.persistence.threshold`).
        jump: the least fall in log density (``D log(d_{k+1} / d_k)``) that makes a gap of a token's
            neighbour distances its natural degree, and the least gap of a Ward dendrogram's cut, at the
            levels of fields of fields (module docstring).
        landmarks: a level of more than twice this many signal tokens is grouped on this many landmarks
            (:mod:`~neurograph.hierarchy.landmarks`); 0: always exact.
        split_jump: a first-level field of a level of at most 4,096 tokens splits at the finest Ward gap
            of its own tokens at least this wide (:func:`~neurograph.hierarchy.gaps.split_at_gaps`).
    """

    k: int = 16
    persistence: float = 1.0
    min_size: int = 5
    dim: float = float(DIM)
    rule: str = "fixed"
    jump: float = 3.0  # ~5% of the tokens of a structureless (Poisson) level show such a gap by chance
    landmarks: int = LANDMARKS  # 0: every level exact
    split_jump: float = SPLIT_JUMP  # the Ward gap that splits a first-level field (gaps.split_at_gaps)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule = {self.rule!r} must be one of {RULES}")

    def k_for(self, n: int) -> int:
        """The graph degree for a level of ``n`` signal tokens (see the class docstring)."""
        return min(self.k, max(self.min_size - 1, n // max(self.min_size, 1), 1))

    def persistence_for(self, k: int) -> float:
        """The persistence floor at graph degree ``k``: ``persistence * (self.k / k) ** 0.75`` (docstring)."""
        return self.persistence * (self.k / max(k, 1)) ** _NOISE_EXPONENT if k < self.k else self.persistence

    def __call__(
        self,
        pos: Tensor,
        mass: Tensor,
        scale: Tensor | None = None,
        links: Tensor | None = None,
        of_fields: bool = False,
    ) -> Basins:
        """Find the fields of ``n`` tokens.

        Args:
            pos: ``[n, 8]`` float32 positions.
            mass: ``[n]`` float32 masses (> 0).
            scale: ``[8]`` axis scales of the weighted metric (``None``: all 1).
            links: ``[2, L]`` int64 extra graph edges (rows of ``pos``), e.g. strong learned edges.
            of_fields: the tokens are fields (a level above the first): natural degrees, two children
                make a field (module docstring).

        Returns:
            The :class:`Basins`.
        """
        n = pos.shape[0]
        dev = pos.device
        if scale is None:
            scale = torch.ones(DIM, dtype=torch.float32, device=dev)
        if n == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            none = torch.zeros(0, device=dev)
            return Basins(empty, empty, none, empty, 0, none, float(self.persistence))
        if not of_fields and self.landmarks > 0 and 2 * self.landmarks < n:  # a very large level
            return self._by_landmarks(pos, mass, scale, links)
        if of_fields and n <= LINKAGE_MAX:  # a small level of fields: the finest gap of its dendrogram
            return self._by_gap(pos, mass, scale, links)
        if of_fields:  # fields of fields: each token's own group, from the gaps of its distances
            idx, dist = knn_graph(pos, min(self.k, n - 1), scale)  # (n, K) candidates
            idx, dist = natural_neighbours(idx, dist, self.dim, self.jump)  # (n, K), -1 / inf beyond
            min_size = min(self.min_size, 2)  # a field of fields needs two children
            floor = self.persistence
        else:
            idx, dist = knn_graph(pos, min(self.k_for(n), n - 1), scale)  # (n, k) rows, -1 padded
            min_size = self.min_size
            floor = self.persistence_for(self.k_for(n))
        log_m, r = _neighbourhood(mass, idx, dist)  # (n,), (n,)
        phi = log_m - self.dim * torch.log(r)  # (n,) as mass_density
        order = _total_order(phi)  # (n,) rank of each token by (phi, row)
        src, dst, w = edge_saddles(idx, dist, r, phi, links, self.dim)  # (E,) both directions
        death, into, rounds = persistence_pairs(order, src, dst, w)
        pers = torch.where(into >= 0, phi - death, torch.full_like(phi, math.inf))  # (n,)
        tau = threshold(pers[(into >= 0) & (pers > 0)], self.rule, floor)
        peak = cut(death, into, phi, tau, min_size)
        if not of_fields and n <= LINKAGE_MAX:  # a basin of two groups that touch: split at their gap
            peak = split_at_gaps(pos, scale, peak, order, links, self.dim, self.split_jump, min_size)
        cluster, sizes = _clusters(peak, min_size)
        if of_fields and sizes.numel() == 1 and int(sizes[0]) == n < self.min_size:
            cluster, sizes = torch.full_like(cluster, -1), sizes[:0]  # no structure: too few for one field
        return Basins(cluster, peak, phi, sizes, rounds, pers, tau)

    def _by_landmarks(self, pos: Tensor, mass: Tensor, scale: Tensor, links: Tensor | None) -> Basins:
        """A level of more than ``2 * landmarks`` tokens, grouped on landmarks
        (:mod:`~neurograph.hierarchy.landmarks`); every token takes the field of its nearest landmark."""
        n, dev = pos.shape[0], pos.device
        rows = landmark_rows(n, self.landmarks, dev)  # (L,)
        assign = nearest_landmark(pos, rows, scale)  # (n,) cell of each token
        cell_mass = torch.zeros(rows.numel(), dtype=torch.float32, device=dev)
        cell_mass.index_add_(0, assign, mass.float())  # (L,) the mass of each cell
        lk = None
        if links is not None and links.numel():
            a, b = assign[links[0].long()], assign[links[1].long()]
            pairs = torch.stack([a[a != b], b[a != b]])  # strong links between cells
            lk = torch.unique(pairs, dim=1) if pairs.numel() else None
        sub = dataclasses.replace(self, landmarks=0)
        b = sub(pos.index_select(0, rows), cell_mass, scale, lk)  # the landmarks' basins
        cluster = b.cluster[assign]  # (n,)
        sizes = torch.bincount(cluster[cluster >= 0], minlength=b.n_fields)  # tokens per field
        pers = torch.zeros(n, dtype=b.persistence.dtype, device=dev)
        pers[rows] = b.persistence
        return Basins(cluster, rows[b.peak][assign], b.phi[assign], sizes, b.rounds, pers, b.threshold)

    def _by_gap(self, pos: Tensor, mass: Tensor, scale: Tensor, links: Tensor | None) -> Basins:
        """A level of at most :data:`LINKAGE_MAX` fields: :func:`~neurograph.hierarchy.gaps.finest_gap_cut`.

        The peak of a group is its member of highest density (``phi`` over its ``min(k, n - 1)``
        nearest); a level that is one group is a field only when it has ``min_size`` members.
        """
        n = pos.shape[0]
        group, gap = finest_gap_cut(pos, scale, self.dim, self.jump, min(self.min_size, 2))
        group = join_linked(group, links)  # a strong link joins the groups of its ends
        idx, dist = knn_graph(pos, min(self.k, n - 1), scale)
        phi = mass_density(mass, idx, dist, self.dim)  # (n,)
        g = int(group.max()) + 1 if n else 0
        order = _total_order(phi)  # (n,) distinct ranks
        top = torch.full((g,), -1, dtype=torch.int64, device=pos.device).scatter_reduce(
            0, group, order, "amax"
        )  # (g,) the highest rank in each group
        by_rank = torch.empty_like(order)
        by_rank[order] = torch.arange(n, device=pos.device)
        peak = by_rank[top][group]  # (n,) row of each group's peak
        cluster, sizes = _clusters(peak, min(self.min_size, 2))
        if g == 1 and n < self.min_size:
            cluster, sizes = torch.full_like(cluster, -1), sizes[:0]  # no structure: too few for one field
        pers = torch.where(peak == torch.arange(n, device=pos.device), math.inf, 0.0)  # (n,)
        return Basins(cluster, peak, phi, sizes, 0, pers.float(), gap)


def natural_neighbours(idx: Tensor, dist: Tensor, dim: float, jump: float) -> tuple[Tensor, Tensor]:
    """Each row's neighbours up to its largest gap: the members of its own group (module docstring).

    Row ``i``'s neighbour distances ``d_1 <= ... <= d_K`` give the jumps ``g_k = D log(d_{k+1} / d_k)``
    (``k = 1..K-1``): how far its log density would fall if its neighbourhood took one neighbour more.
    Its *natural degree* is the ``k`` of the largest jump when that jump is at least ``jump`` and leaves
    two rows outside; a row without such a gap takes the level's typical degree: the median of the
    others' when more than half of the rows have a gap, else ``K`` (a smooth level). Neighbours beyond
    the natural degree are dropped (-1, ``inf``). Two host reads per call (a level of fields is small).

    Shapes:
        idx, dist ``[n, K]`` (nearest first, -1 / ``inf`` padded) -> the same, fewer valid entries.
    """
    n, k = idx.shape
    if k < 2:
        return idx, dist
    valid = idx >= 0
    log_d = torch.log(dist.double().clamp_min(_MIN_DIST))  # (n, K)
    g = dim * (log_d[:, 1:] - log_d[:, :-1])  # (n, K - 1) jump after the (j + 1)-th neighbour
    left = n - 1 - torch.arange(1, k, device=idx.device)  # (K - 1,) rows outside a row and its k nearest
    g = torch.where(valid[:, 1:] & (left >= 2), g, torch.full_like(g, -math.inf))  # two left: a group
    best, at = g.max(1)  # (n,)
    gap = best >= jump  # (n,) rows with a gap of their own
    typical = k  # the level's degree: K (a smooth level) unless most rows have a gap ...
    if 2 * int(gap.sum()) > n:
        typical = int((at[gap] + 1).median())  # ... then the median of theirs
    degree = torch.where(gap, at + 1, torch.full_like(at, typical))  # (n,)
    keep = torch.arange(k, device=idx.device)[None, :] < degree[:, None]  # (n, K)
    return torch.where(keep, idx, -1), torch.where(keep, dist, math.inf)


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
        return _knn_cpu(x, k)
    rows = torch.arange(n, device=dev)
    p = pos.float().contiguous()
    s = scale.float().to(dev)
    if k <= MAX_K_TRITON and triton_available():
        dist, idx = knn_triton(p, p, k, math.inf, s, exclude=rows)
    else:
        dist, idx = knn_reference(p, p, k, math.inf, s, exclude=rows)
    return idx, dist


def _knn_cpu(x: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    """:func:`knn_graph` on the CPU: the cKDTree of :func:`~neurograph.neighbors.knn_arrays`, asked in
    *leaf order* (the points sorted as the leaves of a first tree, so that consecutive queries visit the
    same nodes: about a third less CPU time at 1e5 points), then put back in row order. Rows with
    distances tied exactly are re-sorted by (distance, row), as the rows in the original order would be.

    Shapes:
        x ``[n, 8]`` float64 scaled coordinates -> ``(idx [n, k], dist [n, k] float32)``.
    """
    n = x.shape[0]
    perm = cKDTree(x, balanced_tree=False).indices if n > _LEAF_ORDER_MIN else np.arange(n)  # (n,)
    xp = x[perm]  # (n, 8) nearby points next to each other
    idx, dist = knn_arrays(xp, xp, k, math.inf, exclude_self=True)  # rows and columns in leaf order
    back = np.empty(n, np.int64)
    back[perm] = np.arange(n)  # leaf position of each row
    idx = np.where(idx >= 0, perm[np.maximum(idx, 0)], -1)[back]  # (n, k) original rows
    dist = dist[back]
    tied = ((dist[:, 1:] == dist[:, :-1]) & np.isfinite(dist[:, 1:])).any(1)  # (n,)
    if tied.any():
        idx[tied], dist[tied] = sort_rows(idx[tied], dist[tied])
    return torch.from_numpy(idx), torch.from_numpy(dist.astype(np.float32))


def mass_density(mass: Tensor, idx: Tensor, dist: Tensor, dim: float = float(DIM)) -> Tensor:
    """Log mass density ``log(m_i + sum_j m_j) - dim * log(mean_j d_ij)`` over each row's neighbours.

    Shapes:
        mass ``[n]``, idx ``[n, k]`` (-1 padded), dist ``[n, k]`` -> ``[n]`` float32.
    """
    log_m, r = _neighbourhood(mass, idx, dist)
    return log_m - dim * torch.log(r)


def edge_saddles(
    idx: Tensor, dist: Tensor, r: Tensor, phi: Tensor, links: Tensor | None = None, dim: float = float(DIM)
) -> tuple[Tensor, Tensor, Tensor]:
    """The graph's directed edges (both directions) and their heights (module docstring, step 3).

    Entry ``(i, j)`` of the kNN table is among ``i``'s own ``k`` nearest; when it is not among ``j``'s
    (``d_ij`` beyond ``j``'s ``k``-th distance), it is no higher than ``phi_j - D log(d_ij / r_j)``.

    Args:
        idx, dist: ``[n, k]`` the kNN table (-1 padded, nearest first).
        r: ``[n]`` mean neighbour distances; phi: ``[n]`` log mass densities.
        links: ``[2, L]`` strong links (rows), at the height of their lower end.
        dim: ``D``.

    Returns:
        ``(src [E], dst [E], w [E])`` with ``w <= min(phi[src], phi[dst])``.
    """
    n, k = idx.shape
    src = torch.arange(n, device=idx.device).repeat_interleave(k)  # (n k,)
    dst = idx.reshape(-1)
    d = dist.reshape(-1)
    keep = dst >= 0
    src, dst, d = src[keep], dst[keep], d[keep]
    w = torch.minimum(phi[src], phi[dst])  # (E,) ToMATo's saddle
    if k:
        reach = torch.where(idx >= 0, dist, torch.zeros_like(dist)).amax(1)  # (n,) k-th neighbour distance
        beyond = d > reach[dst]  # (E,) the edge is not among dst's own k nearest
        w_far = phi[dst] - dim * torch.log((d / r[dst]).clamp_min(1.0))  # as if d were dst's mean distance
        w = torch.where(beyond, torch.minimum(w, w_far), w)
    if links is not None and links.numel():
        lk = links.to(idx.device).long()
        src = torch.cat([src, lk[0]])
        dst = torch.cat([dst, lk[1]])
        w = torch.cat([w, torch.minimum(phi[lk[0]], phi[lk[1]])])
    return torch.cat([src, dst]), torch.cat([dst, src]), torch.cat([w, w])


def _neighbourhood(mass: Tensor, idx: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
    """``(log M_i, r_i)``: the log of the mass around each row (its own plus its neighbours') and the
    mean distance to its neighbours (1 without neighbours; at least ``_MIN_DIST``).

    Shapes:
        mass ``[n]``, idx ``[n, k]`` (-1 padded), dist ``[n, k]`` -> ``([n], [n])`` float32.
    """
    valid = idx >= 0  # (n, k)
    m = mass.float()
    nbr_mass = torch.where(valid, m[idx.clamp_min(0)], 0.0).sum(1)  # (n,)
    count = valid.sum(1)
    mean_d = torch.where(valid, dist.float(), 0.0).sum(1) / count.clamp_min(1)  # (n,)
    mean_d = torch.where(count > 0, mean_d, torch.ones_like(mean_d)).clamp_min(_MIN_DIST)
    return torch.log(m + nbr_mass), mean_d


def _total_order(phi: Tensor) -> Tensor:
    """Rank of each row by ``(phi, row)``: distinct ranks ``0..n-1``."""
    n = phi.shape[0]
    perm = torch.argsort(phi, stable=True)  # rows by phi, ties by row
    order = torch.empty(n, dtype=torch.int64, device=phi.device)
    order[perm] = torch.arange(n, device=phi.device)
    return order


def _clusters(peak: Tensor, min_size: int) -> tuple[Tensor, Tensor]:
    """Consecutive field numbers for basins of at least ``min_size`` rows (-1 for the others)."""
    _, inverse, counts = torch.unique(peak, return_inverse=True, return_counts=True)  # by peak row
    big = counts >= min_size
    number = torch.cumsum(big.long(), 0) - 1  # field number of each big basin
    cluster = torch.where(big[inverse], number[inverse], torch.full_like(inverse, -1))
    return cluster, counts[big]
