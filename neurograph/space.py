"""The 8-D semantic space: named axes and the weighted Euclidean metric.

Every token lives at a point ``x`` of an 8-D box whose axes are, in order::

    physical, sensory, motor, emotional, cognitive, social, temporal, abstract

Distances are weighted Euclidean, ``d(x, y) = sqrt(sum_i s_i (x_i - y_i)^2)``, with ``s`` the CDNA's
``axis_scale`` (all ones by default). Working in *scaled coordinates* ``x * sqrt(s)`` turns the weighted
metric into the plain Euclidean one, which is how the neighbour indexes use it.

All functions accept numpy arrays or torch tensors and return the same kind; they are the single source
of the metric for the package (kNN, novelty, forces).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "AXES",
    "AXIS_INDEX",
    "DIM",
    "distance",
    "layer_affinity",
    "pairwise_distance",
    "sq_distance",
]

AXES: tuple[str, ...] = (
    "physical",
    "sensory",
    "motor",
    "emotional",
    "cognitive",
    "social",
    "temporal",
    "abstract",
)
DIM = len(AXES)  # 8
AXIS_INDEX = {name: i for i, name in enumerate(AXES)}

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def sq_distance(x: ArrayT, y: ArrayT, scale: ArrayT) -> ArrayT:
    """Weighted squared distance along the last axis, broadcasting.

    Args:
        x: ``[..., 8]`` points.
        y: ``[..., 8]`` points (broadcastable with ``x``).
        scale: ``[8]`` axis scales ``s``.

    Returns:
        ``[...]`` squared distances ``sum_i s_i (x_i - y_i)^2``.
    """
    diff = x - y
    return (diff * diff * scale).sum(-1)


def distance(x: ArrayT, y: ArrayT, scale: ArrayT) -> ArrayT:
    """Weighted Euclidean distance along the last axis (see :func:`sq_distance`)."""
    d2 = sq_distance(x, y, scale)
    return d2.sqrt() if isinstance(d2, torch.Tensor) else np.sqrt(d2)


def pairwise_distance(x: ArrayT, y: ArrayT, scale: ArrayT) -> ArrayT:
    """All pairwise weighted distances by direct differences (exact, no ``|x|²-2x·y+|y|²`` cancellation).

    Args:
        x: ``[n, 8]``.
        y: ``[m, 8]``.
        scale: ``[8]``.

    Returns:
        ``[n, m]`` distances.
    """
    return distance(x[:, None, :], y[None, :, :], scale)  # (n, m)


def layer_affinity(x: ArrayT) -> ArrayT:
    """Index of the axis of largest ``|component|`` (the token's *layer affinity*).

    Args:
        x: ``[..., 8]``.

    Returns:
        ``[...]`` integer axis indices into :data:`AXES`.
    """
    return abs(x).argmax(-1)
