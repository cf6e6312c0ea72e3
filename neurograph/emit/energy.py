"""The change of field potential energy a signal causes (``energy_delta``, DESIGN §3.5).

``energy_delta`` of a signal is the change of the pair energies between its result token and its other
neighbours: soft-sphere repulsion, the field well of the heavier of the two and the spring of a learned
edge joining them (the terms of :mod:`neurograph.fields.energy`, the force field's own formulas), from the
state before the signal to the state after it (0 before, for a novel token).
"""

from __future__ import annotations

import numpy as np

from neurograph.cdna import CDNA
from neurograph.fields.energy import repulsion_energy, spring_energy, well_energy
from neurograph.state import EdgeState, TokenState

__all__ = ["pair_energy", "pair_terms", "row_pair_energy"]


def pair_energy(
    tokens: TokenState, edges: EdgeState, cdna: CDNA, t: np.ndarray, n: np.ndarray, edge: np.ndarray
) -> np.ndarray:
    """Pair energies between tokens ``t[i]`` and ``n[i]`` in the current state (float64).

    Soft-sphere repulsion, the field well of the heavier of the two, and the spring of the learned edge
    ``edge[i]`` joining them (-1: none).

    Shapes:
        t, n, edge ``[P]`` -> ``[P]``.
    """
    both = np.concatenate([t, n])
    p = t.size
    pos = tokens.gather("pos", both).astype(np.float64)
    mass = tokens.gather("mass", both).astype(np.float64)
    rad = tokens.gather("radius", both).astype(np.float64)
    strength = tokens.gather("strength", both).astype(np.float64)
    has = edge >= 0
    w = np.zeros(p)
    rest = np.zeros(p)
    if has.any():
        w[has] = edges.gather("weight", edge[has])
        rest[has] = edges.gather("rest", edge[has])
    return pair_terms(
        pos[:p], pos[p:], mass[:p], mass[p:], rad[:p], rad[p:], strength[:p], strength[p:], w, rest, has, cdna
    )


def pair_terms(
    pos_a: np.ndarray,
    pos_b: np.ndarray,
    mass_a: np.ndarray,
    mass_b: np.ndarray,
    rad_a: np.ndarray,
    rad_b: np.ndarray,
    str_a: np.ndarray,
    str_b: np.ndarray,
    weight: np.ndarray,
    rest: np.ndarray,
    has_edge: np.ndarray,
    cdna: CDNA,
) -> np.ndarray:
    """The pair energies of :func:`pair_energy` from token attributes (float64 arrays).

    Shapes:
        pos_a, pos_b ``[P, 8]``; every other array ``[P]`` -> ``[P]``.
    """
    diff = pos_a - pos_b
    d = np.sqrt((diff * diff * np.asarray(cdna.axis_scale)).sum(1))
    e = repulsion_energy(d, rad_a + rad_b, cdna.repulsion_k)
    heavier_b = mass_b > mass_a
    e += np.where(heavier_b, well_energy(d, str_b, mass_b, rad_b, cdna.well_k), 0.0)
    e += np.where(~heavier_b & (mass_a > mass_b), well_energy(d, str_a, mass_a, rad_a, cdna.well_k), 0.0)
    e += np.where(has_edge, spring_energy(d, weight, rest, cdna.spring_k), 0.0)
    return e


def row_pair_energy(
    tokens: TokenState,
    edges: EdgeState,
    cdna: CDNA,
    slots: np.ndarray,
    nbr: np.ndarray,
    pair_mask: np.ndarray,
    pair_edge: np.ndarray,
    only: np.ndarray | None = None,
) -> np.ndarray:
    """Per row, the summed pair energies between the row's token and its other neighbours.

    Args:
        slots: ``[B]`` result token of each row.
        nbr: ``[B, k]`` neighbour slots.
        pair_mask: ``[B, k]`` the co-activated pairs (row-major order = ``pair_edge`` order).
        pair_edge: ``[P]`` edge slot joining each pair (-1: none).
        only: ``[B, k]`` restricts the sum to these pairs (e.g. pairs that existed before the batch).

    Returns:
        ``[B]`` float64.
    """
    out = np.zeros(slots.shape[0])
    rows, cols = np.nonzero(pair_mask)
    if only is not None:
        keep = only[rows, cols]
        rows, cols, pair_edge = rows[keep], cols[keep], pair_edge[keep]
    if rows.size:
        np.add.at(out, rows, pair_energy(tokens, edges, cdna, slots[rows], nbr[rows, cols], pair_edge))
    return out
