"""Exact k-nearest-neighbour search in the 8-D space: an eager torch reference and a fused Triton kernel.

Both functions answer the same question. For each query ``q`` they return the up-to-``k`` points ``j``
with ``valid[j]``, ``j != exclude[q]`` and ``d(q, p_j) <= radius``, sorted by ``(distance, index)``:
equal distances are broken by the smaller index, so the answer is unique and both backends agree on it
exactly. Rows with fewer than ``k`` such points are padded with ``inf`` / ``-1``.

The distance is the weighted Euclidean metric of :mod:`neurograph.space`,
``d(q, p) = sqrt(sum_i s_i (q_i - p_i)^2)``, computed in fp32 by *direct differences* (never the
``|q|^2 - 2 q.p + |p|^2`` expansion, which cancels badly for close points), axis after axis:
``d2 = t_0 + t_1 + ... + t_7`` with ``t_i = (q_i - p_i)^2 * s_i``. Fixing this order (rather than
``sum(-1)``, whose association is up to the backend) and taking a correctly rounded square root makes
the reference and the kernel compute bit-identical distances, so exact ties, and the order of near ties,
come out the same. A point at a
non-finite distance (NaN or overflowing coordinates) never qualifies, even with ``radius = inf``.
``scale`` must be non-negative (not checked: that would need a host sync).

- :func:`knn_reference` is the oracle: eager torch, queries in chunks of ``chunk`` rows (a
  ``chunk x N`` distance matrix at a time), ``topk`` for the k-th distance, then an exact fix of the ties
  at the cut (the lowest indices win) and a stable sort of the ``k`` winners by distance.
- :func:`knn_triton` is the fused kernel (``_knn_triton.py``): one program per block of queries scans
  all points in tiles, keeps a running top-k of packed ``(distance, index)`` int64 keys in registers and
  skips the merge for tiles that cannot improve any row. Its module docstring explains the algorithm
  and the tile sizes. It runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``.

triton is imported lazily (only when :func:`knn_triton` launches), so ``import neurograph.kernels``
works without it.
"""

from __future__ import annotations

import importlib
import math
import os

import torch
from torch import Tensor

__all__ = ["MAX_K_TRITON", "knn_reference", "knn_triton", "triton_available"]

DIM = 8  # axes of the semantic space (neurograph.space.DIM)
MAX_K_TRITON = 64  # the kernel keeps k slots per query in registers; 64 is the largest size tested


def triton_available() -> bool:
    """Whether :func:`knn_triton` can run here.

    Returns:
        ``True`` when ``import triton`` works and either CUDA is available or ``TRITON_INTERPRET=1`` is
        set (the Triton interpreter, for CPU tensors).
    """
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return torch.cuda.is_available() or _interpreting()


def knn_reference(
    queries: Tensor,
    points: Tensor,
    k: int,
    radius: float,
    scale: Tensor,
    valid: Tensor | None = None,
    exclude: Tensor | None = None,
    chunk: int = 4096,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours by eager torch, the oracle of :func:`knn_triton`.

    Args:
        queries: ``[Q, 8]`` float32 query positions.
        points: ``[N, 8]`` float32 point positions, on the device of ``queries``.
        k: neighbours per query, ``k >= 1``.
        radius: largest admitted distance (``math.inf`` for none); compared in fp32.
        scale: ``[8]`` float32 non-negative axis scales ``s``.
        valid: ``[N]`` bool, ``False`` for points never to return; ``None`` = all valid.
        exclude: ``[Q]`` int64, a point index to skip for each query (``-1`` = none), so that a token
            is never its own neighbour; ``None`` = none.
        chunk: queries per step; memory is about ``16 * chunk * N`` bytes.

    Returns:
        ``(dist, idx)``: distances ``[Q, k]`` float32 and point indices ``[Q, k]`` int64, sorted by
        ``(distance, index)``, padded with ``inf`` / ``-1`` where fewer than ``k`` points qualify.

    Shapes:
        queries ``[Q, 8]``, points ``[N, 8]``, scale ``[8]``, valid ``[N]``, exclude ``[Q]``
        -> dist ``[Q, k]``, idx ``[Q, k]``.
    """
    _check_inputs(queries, points, k, scale, valid, exclude)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1; got {chunk!r}")
    n_queries, n_points = queries.shape[0], points.shape[0]
    dist, idx = _empty_result(n_queries, k, queries.device)
    if n_queries == 0 or n_points == 0:
        return dist, idx
    radius32 = torch.tensor(radius, dtype=torch.float32, device=queries.device)
    cols = torch.arange(n_points, device=queries.device)  # (N,)
    kk = min(k, n_points)
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        d = _sqrt_rn(_sq_distances(queries[start:stop], points, scale))  # (c, N)
        fits = (d <= radius32) & (d < math.inf)  # (c, N)
        if valid is not None:
            fits &= valid[None, :]
        if exclude is not None:
            fits &= cols[None, :] != exclude[start:stop, None]
        d = d.masked_fill(~fits, math.inf)
        dist[start:stop, :kk], idx[start:stop, :kk] = _smallest_by_distance_then_index(d, kk)
    return dist, idx


def knn_triton(
    queries: Tensor,
    points: Tensor,
    k: int,
    radius: float,
    scale: Tensor,
    valid: Tensor | None = None,
    exclude: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours by a fused Triton kernel; same answer as :func:`knn_reference`.

    Distances are bit-identical to the reference (same operation order, no FMA contraction), so the
    indices agree exactly, ties included. Runs on CUDA tensors, or on CPU tensors when
    ``TRITON_INTERPRET=1`` was set before triton was first imported.

    Args:
        queries: ``[Q, 8]`` float32 query positions.
        points: ``[N, 8]`` float32 point positions, on the device of ``queries``; ``N < 2^28``.
        k: neighbours per query, ``1 <= k <= 64``.
        radius: largest admitted distance (``math.inf`` for none); compared in fp32.
        scale: ``[8]`` float32 non-negative axis scales ``s``.
        valid: ``[N]`` bool, ``False`` for points never to return; ``None`` = all valid.
        exclude: ``[Q]`` int64, a point index to skip for each query (``-1`` = none); ``None`` = none.

    Returns:
        ``(dist, idx)``: distances ``[Q, k]`` float32 and point indices ``[Q, k]`` int64, sorted by
        ``(distance, index)``, padded with ``inf`` / ``-1`` where fewer than ``k`` points qualify.

    Raises:
        ValueError: a malformed argument (named in the message), ``k > 64`` or ``N >= 2^28``.
        RuntimeError: triton is missing, or the tensors are on the CPU without ``TRITON_INTERPRET=1``.

    Shapes:
        queries ``[Q, 8]``, points ``[N, 8]``, scale ``[8]``, valid ``[N]``, exclude ``[Q]``
        -> dist ``[Q, k]``, idx ``[Q, k]``.
    """
    _check_inputs(queries, points, k, scale, valid, exclude)
    if k > MAX_K_TRITON:
        raise ValueError(f"k must be <= {MAX_K_TRITON} for knn_triton (use knn_reference); got {k}")
    if points.shape[0] * DIM >= 2**31:
        raise ValueError(f"points must have fewer than 2^28 rows for knn_triton; got {points.shape[0]}")
    n_queries, n_points = queries.shape[0], points.shape[0]
    if n_queries == 0 or n_points == 0:
        return _empty_result(n_queries, k, queries.device)
    if not triton_available():
        raise RuntimeError("knn_triton needs triton and CUDA (or TRITON_INTERPRET=1 for CPU tensors)")
    if queries.device.type != "cuda" and not _interpreting():
        raise RuntimeError(f"knn_triton needs CUDA tensors (or TRITON_INTERPRET=1); got {queries.device}")
    from neurograph.kernels._knn_triton import launch  # lazy: triton is heavy and optional

    return launch(queries, points, k, radius, scale, valid, exclude)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _empty_result(n_queries: int, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """All-padding result: ``inf`` distances, ``-1`` indices, both ``[Q, k]``."""
    dist = torch.full((n_queries, k), math.inf, dtype=torch.float32, device=device)
    idx = torch.full((n_queries, k), -1, dtype=torch.int64, device=device)
    return dist, idx


def _sq_distances(queries: Tensor, points: Tensor, scale: Tensor) -> Tensor:
    """Weighted squared distances by direct differences, summed axis by axis in a fixed order.

    Args:
        queries: ``[c, 8]``.
        points: ``[N, 8]``.
        scale: ``[8]``.

    Returns:
        ``[c, N]`` ``t_0 + t_1 + ... + t_7`` with ``t_i = (q_i - p_i)^2 * s_i``, the order the kernel uses.
    """
    d2 = None
    for i in range(DIM):
        diff = queries[:, i, None] - points[None, :, i]  # (c, N)
        term = diff * diff * scale[i]
        d2 = term if d2 is None else d2 + term
    return d2


def _sqrt_rn(x: Tensor) -> Tensor:
    """Correctly rounded fp32 square root, like ``tl.sqrt_rn``, numpy and CUDA's ``torch.sqrt``.

    torch's vectorised fp32 ``sqrt`` on the CPU is off by one ulp for about a fifth of inputs (torch 2.13);
    the float64 root rounded to float32 is exact (no double-rounding error for a square root).
    """
    return x.double().sqrt().float()


def _smallest_by_distance_then_index(d: Tensor, kk: int) -> tuple[Tensor, Tensor]:
    """The ``kk`` smallest entries of each row in ``(distance, index)`` order, ``inf`` entries as padding.

    ``topk`` gives the right *values* but may pick any of several equal ones at the cut and order equal
    ones freely. So: take every entry strictly below the k-th value, fill up with the lowest-index entries
    equal to it, then stable-sort the winners (found in index order) by distance.

    Args:
        d: ``[c, N]`` distances, ``inf`` where a point does not qualify.
        kk: ``1 <= kk <= N``.

    Returns:
        ``(dist [c, kk], idx [c, kk])`` with ``idx = -1`` where ``dist`` is ``inf``.
    """
    cut = torch.topk(d, kk, dim=1, largest=False, sorted=True).values[:, -1:]  # (c, 1)
    below = d < cut  # (c, N): fewer than kk per row, all of them win
    at_cut = d == cut  # (c, N): at least enough to fill up; the lowest indices win
    missing = kk - below.sum(dim=1, keepdim=True)  # (c, 1)
    wins = below | (at_cut & (at_cut.cumsum(dim=1) <= missing))  # (c, N): exactly kk per row
    idx = wins.nonzero()[:, 1].view(-1, kk)  # (c, kk) ascending index within each row
    dist = d.gather(1, idx)  # (c, kk)
    dist, order = torch.sort(dist, dim=1, stable=True)  # equal distances keep ascending index
    idx = idx.gather(1, order).masked_fill(dist == math.inf, -1)
    return dist, idx


def _check_inputs(
    queries: Tensor,
    points: Tensor,
    k: int,
    scale: Tensor,
    valid: Tensor | None,
    exclude: Tensor | None,
) -> None:
    """Shape, dtype and device checks (no host sync); raises ``ValueError`` naming the argument."""
    for name, x in (("queries", queries), ("points", points)):
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != DIM or x.dtype != torch.float32:
            raise ValueError(f"{name} must be a [n, {DIM}] float32 tensor; got {_describe(x)}")
    if points.device != queries.device:
        raise ValueError(f"points must be on the device of queries ({queries.device}); got {points.device}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1; got {k!r}")
    _check_vector("scale", scale, (DIM,), torch.float32, queries.device)
    if valid is not None:
        _check_vector("valid", valid, (points.shape[0],), torch.bool, queries.device)
    if exclude is not None:
        _check_vector("exclude", exclude, (queries.shape[0],), torch.int64, queries.device)


def _check_vector(
    name: str, x: object, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> None:
    if not isinstance(x, Tensor) or tuple(x.shape) != shape or x.dtype != dtype or x.device != device:
        raise ValueError(f"{name} must be a {list(shape)} {dtype} tensor on {device}; got {_describe(x)}")


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{list(x.shape)} {x.dtype} tensor on {x.device}"
    return repr(x)
