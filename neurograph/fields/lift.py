"""Lift a pair energy to the whole system, over a neighbour list or over an edge list.

A pair energy is a pure function of distances (:mod:`neurograph.fields.energy`). The system's energy is
its sum over a set of pairs, given in one of two layouts:

- a **neighbour list** ``nbr [n, k]``: row ``i`` lists token slots ``j`` (``-1`` = empty slot). A list
  is symmetric (``j`` in row ``i`` iff ``i`` in row ``j``), so every unordered pair appears twice and the
  sum carries a factor ``1/2``;
- an **edge list** ``edge_index [2, E]`` (PyG convention): every pair appears once.

:func:`pair_geometry` turns either layout into flat pair indices ``(i, j)`` and weighted distances ``d``;
:func:`lift` sums a pair energy over them. Distances at ``d = 0`` get a zero gradient (the direction of
the force between two coincident tokens is undefined), so autograd through :func:`lift` never gives NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["lift", "pair_geometry", "safe_norm"]

PairEnergy = Callable[[Tensor, Tensor, Tensor], Tensor]  # (d [P], i [P], j [P]) -> energies [P]


def safe_norm(d2: Tensor) -> Tensor:
    """``sqrt(d2)`` with a zero (not NaN) gradient at ``d2 = 0``.

    Shapes:
        d2: ``[...]`` -> ``[...]``.
    """
    pos = d2 > 0
    return torch.where(pos, torch.where(pos, d2, torch.ones_like(d2)).sqrt(), torch.zeros_like(d2))


def pair_geometry(
    pos: Tensor,
    scale: Tensor,
    *,
    neighbors: Tensor | None = None,
    edges: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """Flat pairs and their weighted distances for a neighbour list or an edge list (exactly one).

    Args:
        pos: ``[n, 8]`` positions.
        scale: ``[8]`` axis scales ``s`` of the metric.
        neighbors: ``[n, k]`` integer slots (``-1`` = empty).
        edges: ``[2, E]`` integer slots, source and target.

    Returns:
        ``(i, j, valid, d, factor)``: pair endpoints ``[P]`` (int64; ``j`` clamped to a valid slot where the
        entry is empty), ``valid [P]`` bool, distances ``d [P]`` and the double-counting factor (``0.5`` for
        a neighbour list, ``1.0`` for an edge list).
    """
    if (neighbors is None) == (edges is None):
        raise ValueError("pass exactly one of neighbors= (a [n, k] list) or edges= (a [2, E] edge_index)")
    if neighbors is not None:
        n, k = neighbors.shape
        i = torch.arange(n, device=pos.device).repeat_interleave(k)  # (n k,)
        j = neighbors.reshape(-1).long()  # (n k,)
        factor = 0.5
    else:
        i, j = edges[0].long(), edges[1].long()  # (E,), (E,)
        factor = 1.0
    valid = j >= 0
    j = j.clamp_min(0)
    dx = pos[i] - pos[j]  # (P, 8)
    d = safe_norm((dx * dx * scale).sum(-1))  # (P,)
    return i, j, valid, d, factor


def lift(
    energy_fn: PairEnergy,
    pos: Tensor,
    scale: Tensor,
    *,
    neighbors: Tensor | None = None,
    edges: Tensor | None = None,
    mask: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Total energy ``sum over pairs of energy_fn(d, i, j)`` (times 1/2 for a neighbour list).

    Args:
        energy_fn: ``(d [P], i [P], j [P]) -> [P]`` pair energies; it gathers its per-token or per-edge
            parameters with ``i``, ``j`` (e.g. ``radius[i] + radius[j]``).
        pos: ``[n, 8]`` positions (differentiable: forces are ``-grad`` of the result).
        scale: ``[8]`` axis scales.
        neighbors: ``[n, k]`` neighbour list, or
        edges: ``[2, E]`` edge list.
        mask: optional ``(i, j) -> [P]`` bool, pairs to keep (e.g. both tokens alive).

    Returns:
        A 0-d tensor.
    """
    i, j, valid, d, factor = pair_geometry(pos, scale, neighbors=neighbors, edges=edges)
    if mask is not None:
        valid = valid & mask(i, j)
    e = torch.where(valid, energy_fn(d, i, j), torch.zeros_like(d))  # (P,)
    return factor * e.sum()
