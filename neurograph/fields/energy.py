"""Pair energies of the force field, as pure functions of distances.

Each function maps distances (and per-pair parameters) to energies, elementwise, for numpy arrays or
torch tensors alike. They are the single definition of the potential: the engine's ``energy_delta`` of a
signal, the reference (autograd) forces and the fused kernels all derive from them.

- Spring along an edge (toward the rest length)::

      E_spring(d) = 1/2 * k * w * (d - rest)^2

- Soft-sphere repulsion inside the contact distance ``sigma = radius_i + radius_j``::

      E_rep(d) = 1/2 * k * (1 - d / sigma)^2   for d < sigma, else 0

- Field well of a heavier token ``j`` felt by ``i`` (linear fall-off inside ``j``'s field radius)::

      E_well(d) = -k * strength_j * mass_j * (1 - d / radius_j)   for d < radius_j, else 0
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = ["repulsion_energy", "spring_energy", "well_energy"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _relu(x: ArrayT) -> ArrayT:
    return x.clamp(min=0) if isinstance(x, torch.Tensor) else np.maximum(x, 0)


def spring_energy(d: ArrayT, weight: ArrayT, rest: ArrayT, k: float) -> ArrayT:
    """``1/2 k w (d - rest)^2``.

    Shapes:
        d, weight, rest: broadcastable ``[...]`` -> ``[...]``.
    """
    return 0.5 * k * weight * (d - rest) ** 2


def repulsion_energy(d: ArrayT, sigma: ArrayT, k: float) -> ArrayT:
    """Soft sphere ``1/2 k (1 - d/sigma)^2`` inside ``sigma`` (zero outside).

    Shapes:
        d, sigma: broadcastable ``[...]`` -> ``[...]``.
    """
    return 0.5 * k * _relu(1.0 - d / sigma) ** 2


def well_energy(d: ArrayT, strength: ArrayT, mass: ArrayT, radius: ArrayT, k: float) -> ArrayT:
    """Field well ``-k s m (1 - d/radius)`` inside ``radius`` (zero outside); ``s, m, radius`` of the source.

    Shapes:
        d, strength, mass, radius: broadcastable ``[...]`` -> ``[...]``.
    """
    return -k * strength * mass * _relu(1.0 - d / radius)
