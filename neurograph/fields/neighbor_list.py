"""The neighbour list of the dynamics, as data: candidates with a skin, tracked on the device.

Pairs interact only within a finite range (``radius_i + radius_j`` at most, same level; see
:mod:`neurograph.fields.system`). A *Verlet list* keeps, for every token, the candidates that lay within
the **list radius** ``r_list(L) = 2 * max radius of level L + skin`` at the last rebuild. While no token has
moved more than ``skin / 2`` (in the weighted metric) since then, no pair outside the list can have come
within range, so the pairs the forces see are exactly those a fresh search would find.

The list is data (JAX-MD's ``NeighborList``), allocated and rebuilt outside compiled code:

- ``idx [C, k']`` int32: up to ``k'`` candidates per token (``capacity``), nearest first, ``-1`` padded;
- ``pos0 [C, 8]``: positions at the last rebuild;
- ``ctl [3]`` float32 on the device: the largest displacement since the rebuild (every step updates it),
  the steps done in the current call, and the **overflow** flag: some row had more than ``k'`` tokens
  within its list radius (``k' + 1`` are searched to know). A step refuses to move anything while the
  displacement exceeds ``skin / 2`` or the flag is set; the host reads ``ctl`` every K steps (never once
  per step), grows ``k'`` (doubling) on overflow, and rebuilds.

Rebuilds use the exact search of :mod:`neurograph.neighbors` / :mod:`neurograph.kernels`: on CPU tensors
:func:`~neurograph.neighbors.knn_arrays` (cKDTree in scaled coordinates), on CUDA
:func:`~neurograph.kernels.knn_triton` (or :func:`~neurograph.kernels.knn_reference` without triton or
beyond its ``k <= 64``), once per level, over the alive tokens of that level, each token excluding itself.
The host syncs a few scalars per rebuild (levels and radii present), never per step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from neurograph.kernels import knn_reference, knn_triton, triton_available
from neurograph.kernels.knn import MAX_K_TRITON
from neurograph.neighbors import knn_arrays

__all__ = ["NeighborList", "NeighborListFn", "exact_neighbors", "level_radii"]

_REF_BYTES = 1 << 28  # memory budget of one knn_reference chunk (16 bytes per query x point)
_LEVELS = 128  # levels are int8


@dataclass(eq=False)
class NeighborList:
    """Candidates per token plus what tells whether they can still be trusted (see the module docstring).

    Shapes:
        idx ``[C, k']`` int32, pos0 ``[C, 8]``, ctl ``[3]`` float32.
    """

    idx: Tensor
    pos0: Tensor
    ctl: Tensor
    radius: tuple[float, ...]  # list radius per level (index = level), cutoff + skin
    skin: float
    count: int  # slots in use at the rebuild
    alive: tuple[int, ...]  # alive tokens per level at the rebuild
    rebuilds: int = 0  # rebuilds since allocation

    @property
    def capacity(self) -> int:
        """``k'``: candidate slots per token."""
        return self.idx.shape[1]

    def __repr__(self) -> str:
        radius = "[" + ", ".join(f"{r:.4g}" for r in self.radius) + "]"
        return (
            f"NeighborList(capacity={self.capacity}, tokens={self.count}, radius={radius}, "
            f"skin={self.skin}, rebuilds={self.rebuilds}, device={str(self.idx.device)!r})"
        )


def level_radii(radius: Tensor, level: Tensor, alive: Tensor) -> tuple[list[float], list[int]]:
    """Largest radius and number of alive tokens per level, in one host transfer.

    Shapes:
        radius ``[n]``, level ``[n]`` (int8), alive ``[n]`` -> two lists of length ``top level + 1``.
    """
    lev = level.long().clamp(0, _LEVELS - 1)[alive]  # (a,)
    table = torch.zeros(2, _LEVELS, dtype=torch.float32, device=radius.device)
    table[0].scatter_reduce_(0, lev, radius[alive].float(), reduce="amax")
    table[1].index_add_(0, lev, torch.ones_like(lev, dtype=torch.float32))
    rmax, counts = table.tolist()
    top = max((i + 1 for i, c in enumerate(counts) if c > 0), default=0)
    return rmax[:top], [int(c) for c in counts[:top]]


def exact_neighbors(
    pos: Tensor, valid: Tensor, k: int, radius: float, scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Up to ``k`` nearest valid tokens within ``radius`` of every valid token (itself excluded).

    Args:
        pos: ``[n, 8]`` positions.
        valid: ``[n]`` bool, the tokens searched among and for.
        k: candidates per row.
        radius: distance bound (inclusive).
        scale: ``[8]`` axis scales.

    Returns:
        ``(rows, idx)``: the slots of the valid tokens ``[q]`` (int64) and their candidates ``[q, k]``
        (int64 slots, nearest first, ``-1`` padded), on the device of ``pos``.
    """
    if pos.device.type == "cpu":
        rows_np = np.nonzero(valid.numpy())[0]
        pts = pos.numpy()[rows_np].astype(np.float64) * np.sqrt(scale.double().numpy())  # (q, 8)
        idx, _ = knn_arrays(pts, pts, k, radius, exclude_self=True)  # (q, k) into rows
        idx = np.where(idx >= 0, rows_np[np.maximum(idx, 0)], -1)
        return torch.from_numpy(rows_np), torch.from_numpy(idx)
    rows = valid.nonzero().squeeze(1)  # (q,)
    queries = pos[rows].float()
    if k <= MAX_K_TRITON and triton_available():
        _, idx = knn_triton(queries, pos.float(), k, radius, scale.float(), valid=valid, exclude=rows)
    else:
        chunk = max(1, _REF_BYTES // (16 * max(pos.shape[0], 1)))
        _, idx = knn_reference(queries, pos.float(), k, radius, scale.float(), valid, rows, chunk=chunk)
    return rows, idx


@dataclass(frozen=True)
class NeighborListFn:
    """Allocates and rebuilds :class:`NeighborList` s (JAX-MD's ``neighbor_fn``)."""

    skin: float = 0.05  # rebuild once a token moved more than skin / 2 since the last rebuild
    capacity: int = 16  # k': candidate slots per token at allocation (doubles on overflow)

    def allocate(
        self, pos: Tensor, radius: Tensor, level: Tensor, alive: Tensor, count: int, scale: Tensor
    ) -> NeighborList:
        """A fresh list of ``capacity`` slots per token, built at ``pos``.

        Shapes:
            pos ``[C, 8]``; radius, level, alive ``[C]``; scale ``[8]``.
        """
        empty = NeighborList(
            idx=torch.empty((pos.shape[0], self.capacity), dtype=torch.int32, device=pos.device),
            pos0=pos,
            ctl=torch.zeros(3, dtype=torch.float32, device=pos.device),
            radius=(),
            skin=self.skin,
            count=count,
            alive=(),
            rebuilds=-1,
        )
        return self.update(empty, pos, radius, level, alive, count, scale)

    def update(
        self,
        nl: NeighborList,
        pos: Tensor,
        radius: Tensor,
        level: Tensor,
        alive: Tensor,
        count: int,
        scale: Tensor,
        grow: bool = False,
    ) -> NeighborList:
        """Rebuild ``nl`` by an exact search at ``pos`` (twice the capacity when ``grow``; the token
        capacity ``C`` follows ``pos``). Sets the device overflow flag instead of syncing on it."""
        c = pos.shape[0]
        k = nl.capacity * 2 if grow else nl.capacity
        rmax, counts = level_radii(radius[:count], level[:count], alive[:count])
        radii = tuple(2.0 * r + self.skin for r in rmax)
        idx = torch.full((c, k), -1, dtype=torch.int32, device=pos.device)
        overflow = torch.zeros((), dtype=torch.bool, device=pos.device)
        lev = level[:count].long()
        for lvl, r_list in enumerate(radii):
            if counts[lvl] < 2:
                continue
            valid = alive[:count] & (lev == lvl)
            rows, cand = exact_neighbors(pos[:count], valid, k + 1, r_list, scale)  # (q,), (q, k + 1)
            rows = rows.to(pos.device)
            cand = cand.to(pos.device)
            idx[rows] = cand[:, :k].to(torch.int32)
            overflow = overflow | (cand[:, k] >= 0).any()
        ctl = torch.zeros(3, dtype=torch.float32, device=pos.device)
        ctl[2] = overflow.to(torch.float32)
        return replace(
            nl,
            idx=idx,
            pos0=pos.clone(),
            ctl=ctl,
            radius=radii,
            skin=self.skin,
            count=count,
            alive=tuple(counts),
            rebuilds=nl.rebuilds + 1,
        )

    def still_covers(
        self, nl: NeighborList, radius: Tensor, level: Tensor, alive: Tensor, count: int
    ) -> bool:
        """Whether ``nl`` still describes the tokens (same slots in use, same alive tokens per level, no
        radius grown past its list radius); positions are checked on the device by the steps.
        One host transfer."""
        if count != nl.count or radius.shape[0] != nl.idx.shape[0]:
            return False
        rmax, counts = level_radii(radius[:count], level[:count], alive[:count])
        if tuple(counts) != nl.alive:
            return False
        return all(2.0 * r + self.skin <= bound * (1 + 1e-6) for r, bound in zip(rmax, nl.radius))
