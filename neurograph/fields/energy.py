"""Pair energies of the force field and their analytic radial forces, as pure functions of distances.

Each function maps distances (and per-pair parameters) to energies, elementwise, for numpy arrays or
torch tensors alike. They are the single definition of the potential: the engine's ``energy_delta`` of a
signal, the reference (autograd) forces, the dense gather forces and the fused kernel all derive from
them. Distances are those of the weighted metric ``d = sqrt(sum_i s_i dx_i^2)`` (:mod:`neurograph.space`).

- Spring along an edge (toward the rest length)::

      E_spring(d) = 1/2 * k * w * (d - rest)^2

- Soft-sphere repulsion inside the contact distance ``sigma = radius_i + radius_j``::

      E_rep(d) = 1/2 * k * (1 - d / sigma)^2   for d < sigma, else 0

- Field well of a heavier token ``j`` felt by ``i`` (linear fall-off inside ``j``'s field radius)::

      E_well(d) = -k * strength_j * mass_j * (1 - d / radius_j)   for d < radius_j, else 0

- Pull of a token toward its parent field (a spring of rest length 0, weight 1)::

      E_parent(d) = 1/2 * k * d^2

Each ``*_force`` function is the *radial force* ``f(d) = -dE/dd`` of the energy of the same name
(positive: repulsive, negative: attractive). The force on token ``i`` from the pair ``(i, j)`` is then
``F_i = f(d) * s * (x_i - x_j) / d`` (the metric's gradient carries the axis scales ``s``), and ``F_j =
-F_i``. Where the energy has a kink (the well's edge at ``d = radius``) the force is taken from the
inside limit at ``d < radius`` and is zero at ``d >= radius``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "parent_energy",
    "parent_force",
    "repulsion_energy",
    "repulsion_force",
    "spring_energy",
    "spring_force",
    "well_energy",
    "well_force",
]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _relu(x: ArrayT) -> ArrayT:
    return x.clamp(min=0) if isinstance(x, torch.Tensor) else np.maximum(x, 0)


def _inside(d: ArrayT, bound: ArrayT) -> ArrayT:
    """``1.0`` where ``d < bound``, else ``0.0`` (in the dtype of ``d``)."""
    return (d < bound).to(d.dtype) if isinstance(d, torch.Tensor) else (d < bound).astype(np.result_type(d))


def spring_energy(d: ArrayT, weight: ArrayT, rest: ArrayT, k: float) -> ArrayT:
    """``1/2 k w (d - rest)^2``.

    Shapes:
        d, weight, rest: broadcastable ``[...]`` -> ``[...]``.
    """
    return 0.5 * k * weight * (d - rest) ** 2


def spring_force(d: ArrayT, weight: ArrayT, rest: ArrayT, k: float) -> ArrayT:
    """Radial force of :func:`spring_energy`: ``-k w (d - rest)`` (attractive beyond the rest length).

    Shapes:
        d, weight, rest: broadcastable ``[...]`` -> ``[...]``.
    """
    return -k * weight * (d - rest)


def repulsion_energy(d: ArrayT, sigma: ArrayT, k: float) -> ArrayT:
    """Soft sphere ``1/2 k (1 - d/sigma)^2`` inside ``sigma`` (zero outside).

    Shapes:
        d, sigma: broadcastable ``[...]`` -> ``[...]``.
    """
    return 0.5 * k * _relu(1.0 - d / sigma) ** 2


def repulsion_force(d: ArrayT, sigma: ArrayT, k: float) -> ArrayT:
    """Radial force of :func:`repulsion_energy`: ``(k / sigma) (1 - d/sigma)`` inside ``sigma`` (>= 0).

    Shapes:
        d, sigma: broadcastable ``[...]`` -> ``[...]``.
    """
    return (k / sigma) * _relu(1.0 - d / sigma)


def well_energy(d: ArrayT, strength: ArrayT, mass: ArrayT, radius: ArrayT, k: float) -> ArrayT:
    """Field well ``-k s m (1 - d/radius)`` inside ``radius`` (zero outside); ``s, m, radius`` of the source.

    Shapes:
        d, strength, mass, radius: broadcastable ``[...]`` -> ``[...]``.
    """
    return -k * strength * mass * _relu(1.0 - d / radius)


def well_force(d: ArrayT, strength: ArrayT, mass: ArrayT, radius: ArrayT, k: float) -> ArrayT:
    """Radial force of :func:`well_energy`: ``-k s m / radius`` for ``d < radius`` (constant pull), else 0.

    Shapes:
        d, strength, mass, radius: broadcastable ``[...]`` -> ``[...]``.
    """
    return -k * strength * mass / radius * _inside(d, radius)


def parent_energy(d: ArrayT, k: float) -> ArrayT:
    """Pull toward the parent field, ``1/2 k d^2`` (:func:`spring_energy` with ``w = 1, rest = 0``).

    Shapes:
        d: ``[...]`` -> ``[...]``.
    """
    return 0.5 * k * d**2


def parent_force(d: ArrayT, k: float) -> ArrayT:
    """Radial force of :func:`parent_energy`: ``-k d``.

    Shapes:
        d: ``[...]`` -> ``[...]``.
    """
    return -k * d
