"""The change of field potential energy a signal causes (``energy_delta``, DESIGN §3.5).

``energy_delta`` of a signal is the change of the pair energies between its result token and its other
neighbours: soft-sphere repulsion, the field well of the heavier of the two and the spring of a learned
edge joining them (the terms of :mod:`neurograph.fields.energy`, the force field's own formulas), from the
state before the signal to the state after it (0 before, for a novel token).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.emit.hebbian import take_rows
from neurograph.fields.energy import repulsion_energy, spring_energy, well_energy
from neurograph.state import EdgeState, TokenState

__all__ = ["ordered_sum", "pair_terms", "row_pair_energy"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def pair_terms(
    pos_a: ArrayT,
    pos_b: ArrayT,
    mass_a: ArrayT,
    mass_b: ArrayT,
    rad_a: ArrayT,
    rad_b: ArrayT,
    str_a: ArrayT,
    str_b: ArrayT,
    weight: ArrayT,
    rest: ArrayT,
    has_edge: ArrayT,
    cdna: CDNA,
) -> ArrayT:
    """Pair energies between tokens ``a`` and ``b`` from their attributes (float64).

    Soft-sphere repulsion, the field well of the heavier of the two, and the spring of the learned edge
    joining them (``weight``, ``rest``; where ``has_edge``). numpy arrays or torch tensors (the same kind
    comes back): the single-signal path and the batch path share this one formula, and round alike (the
    tensor branch sums the axes in numpy's order).

    Shapes:
        pos_a, pos_b ``[..., 8]``; every other array ``[...]`` (broadcastable) -> ``[...]``.
    """
    diff = pos_a - pos_b
    if isinstance(diff, torch.Tensor):
        sq = diff * diff
        if any(s != 1.0 for s in cdna.axis_scale):  # (x * 1.0 is x: skipped for the plain metric)
            sq = sq * torch.tensor(cdna.axis_scale, dtype=diff.dtype).to(diff.device, non_blocking=True)
        d = torch.sqrt(ordered_sum(sq))

        def only(mask: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return v * mask  # v is finite: the values of where(mask, v, 0), faster on the CPU

    else:
        d = np.sqrt((diff * diff * np.asarray(cdna.axis_scale)).sum(-1))

        def only(mask: np.ndarray, v: np.ndarray) -> np.ndarray:
            return np.where(mask, v, 0.0)

    e = repulsion_energy(d, rad_a + rad_b, cdna.repulsion_k)
    heavier_b = mass_b > mass_a
    e = e + only(heavier_b, well_energy(d, str_b, mass_b, rad_b, cdna.well_k))
    e = e + only(~heavier_b & (mass_a > mass_b), well_energy(d, str_a, mass_a, rad_a, cdna.well_k))
    return e + only(has_edge, spring_energy(d, weight, rest, cdna.spring_k))


def ordered_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis, associated as numpy's pairwise ``sum`` associates ``n`` numbers, so that
    a tensor path and a numpy path round alike: eight partial sums over blocks of eight, combined as a
    tree, the rest added in order (fewer than eight: added in order from 0; more than 128: halved).

    Shapes:
        ``[..., n]`` -> ``[...]``.
    """
    n = t.shape[-1]
    if n < 8:
        out = torch.zeros(t.shape[:-1], dtype=t.dtype, device=t.device)
        for i in range(n):
            out = out + t[..., i]
        return out
    if n > 128:
        half = n // 2 - (n // 2) % 8
        return ordered_sum(t[..., :half]) + ordered_sum(t[..., half:])
    m = n - n % 8
    r = t[..., :8]
    for i in range(8, m, 8):
        r = r + t[..., i : i + 8]  # (..., 8) partial sums
    r = r[..., 0::2] + r[..., 1::2]  # (..., 4) (r0 + r1), (r2 + r3), ...
    r = r[..., 0::2] + r[..., 1::2]  # (..., 2)
    out = r[..., 0] + r[..., 1]
    for i in range(m, n):
        out = out + t[..., i]
    return out


def row_pair_energy(
    tokens: TokenState,
    edges: EdgeState,
    cdna: CDNA,
    slots: torch.Tensor,
    b: torch.Tensor,
    pair_edge: torch.Tensor,
    count: torch.Tensor | None,
    pairs: tuple[torch.Tensor, int],
) -> torch.Tensor:
    """Per row, the summed pair energies between the row's token and its other neighbours, now.

    Tensor work on the stores' device. Each row's pairs are summed left to right (as a sequential emit
    sums them), in the order of the row's neighbour table.

    Args:
        tokens, edges: the stores, read as they are now.
        cdna: the constitution in force.
        slots: ``[B]`` each row's token.
        b: ``[P]`` the neighbour of each pair.
        pair_edge: ``[P]`` edge slot joining each pair (-1: none).
        count: ``[P]`` bool, the pairs to count (``None``: all).
        pairs: ``(at, w)``: ``at [P]`` is each pair's row-major place in the ``[B, w]`` neighbour table.

    Returns:
        ``[B]`` float64.
    """
    at, width = pairs
    rows = slots.shape[0]
    row = at // max(width, 1)  # (P,) the row of each pair
    f64 = torch.float64

    def attr(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the row's token: gathered per row, spread to its pairs (a small table, converted once)
        return take_rows(take_rows(t, slots).to(f64), row), take_rows(t, b).to(f64)  # (P, ...) each

    (ma, mb), (ra, rb), (sa, sb), (pa, pb) = (
        attr(t) for t in (tokens.mass, tokens.radius, tokens.strength, tokens.pos)
    )
    has = pair_edge >= 0
    edge = pair_edge.clamp_min(0)
    w = take_rows(edges.weight, edge).to(f64) * has  # (P,), 0 without an edge
    rest = take_rows(edges.rest, edge).to(f64) * has
    e = pair_terms(pa, pb, ma, mb, ra, rb, sa, sb, w, rest, has, cdna)  # (P,)
    if count is not None:
        e = torch.where(count, e, 0.0)
    table = torch.zeros(rows * width, dtype=f64, device=slots.device).index_copy_(0, at, e).view(rows, width)
    out = torch.zeros(rows, dtype=f64, device=slots.device)
    for j in range(width):
        out = out + table[:, j]
    return out
