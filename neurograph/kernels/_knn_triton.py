"""The fused Triton kernel behind :func:`neurograph.kernels.knn_triton` and its launcher.

This module imports triton at the top, so it is imported only when the kernel is first launched
(``knn.knn_triton`` does it lazily); ``TRITON_INTERPRET=1`` must be set before that moment to run the
kernel on CPU tensors with the Triton interpreter.

Algorithm (one program per block of ``BQ`` queries, exact, fp32):

1. **Distances in registers.** The program loads its ``BQ`` queries once, then walks over all ``N`` points
   in tiles of ``BN``. For each tile it computes the ``(BQ, BN)`` squared distances by direct differences,
   axis by axis, in the same order as :func:`~neurograph.kernels.knn.knn_reference`
   (``d2 = t_0 + t_1 + ... + t_7`` with ``t_i = (q_i - p_i)^2 * s_i``), and the launcher turns off FMA
   contraction, so both compute bit-identical distances and agree on every tie. Points that are invalid,
   excluded, past ``N`` or at a non-finite distance get ``d2 = +inf``.
2. **Tile skipping.** A tile can only change a row's list if its nearest point is no farther than the
   row's current k-th best distance and the radius. The row minima of ``d2`` cost one reduction and
   ``BQ`` square roots (``sqrt`` is monotone, so ``sqrt(min d2) = min sqrt(d2)``); when no row of the block
   passes, the tile is done. Most tiles of a large search end here: a query's list only improves
   about ``k * ln(N / k)`` times over the whole scan.
3. **Running top-k with packed keys.** Each row keeps ``KP = next_pow2(k)`` slots of int64 *keys*
   ``(bits(dist) << 32) | j``. For ``dist >= 0`` the fp32 bit pattern orders like the value, so comparing
   keys compares ``(distance, index)`` exactly: ties are broken by index with no extra work. Empty slots
   hold distinct keys just above every real one (they decode to ``inf``), padding slots ``>= k`` hold
   negative keys that are never the maximum. Merging a tile repeats, while some row's best remaining
   tile key beats its worst slot: replace that slot (the row maximum; keys are unique) by the candidate
   and strike the candidate from the tile. A tile takes at most ``k`` rounds, usually one or two.
4. **Output.** At the end each row's slots are sorted (a bitonic ``tl.sort`` of ``KP`` keys), decoded to
   ``(dist, idx)`` with ``inf`` / ``-1`` for empty slots, and the first ``k`` columns are written.

Tile sizes, chosen for an H100 / H200 (132 SMs, 50 MB L2) at the target workload of 8,192 queries
against 1e6 points, ``k = 16``:

- ``BQ = 32``: 256 programs for 8,192 queries, about two per SM. Smaller blocks also skip more tiles
  (a tile is merged when *any* of the ``BQ`` rows improves) and make each merge round cheaper.
- ``BN = 128``: the ``(32, 128)`` fp32 tile is 32 registers a thread at 4 warps (64 more for the int64 keys
  of a merge) with no spills, and enough work per tile to amortise the block-wide skip test
  (one barrier per tile). A tile is 4 KB of points; the ``[8, N]`` points (32 MB at 1e6) stay in L2,
  so every program streams them from L2, not HBM.
- ``num_warps = 4``: the tile is small; more warps would mostly add barrier cost to the skip test.

These are first choices from the arithmetic above, not tuned on hardware yet: :func:`launch` takes them
as keyword arguments so that a benchmark can sweep them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["BLOCK_N", "BLOCK_Q", "NUM_WARPS", "launch"]

BLOCK_Q = 32  # queries per program (see the module docstring)
BLOCK_N = 128  # points per tile
NUM_WARPS = 4  # warps per program

# Packed keys: (bits(dist) << 32) | index. Real keys are < _EMPTY (finite distances);
# empty slots are _EMPTY + 1 .. _EMPTY + KP (decode to inf); _NONE marks a tile entry that may not enter.
_EMPTY = tl.constexpr(0x7F80_0000_0000_0000)  # bits(+inf) << 32
_NONE = tl.constexpr(0x7FFF_FFFF_FFFF_FFFF)  # int64 max
_INF = tl.constexpr(float("inf"))


@triton.jit
def _axis_term(q, s, p):
    """``s (q - p)^2`` for one axis: ``q`` ``(BQ,)``, ``s`` a scalar, ``p`` ``(BN,)`` -> ``(BQ, BN)``."""
    diff = q[:, None] - p[None, :]  # (BQ, BN)
    return diff * diff * s


@triton.jit
def _merge_tile(best, d2, cols, radius):
    """Merge one tile of candidates into the running top-k; returns the new keys and k-th distances.

    ``best`` ``(BQ, KP)`` int64 keys, ``d2`` ``(BQ, BN)`` squared distances (``inf`` = not a candidate),
    ``cols`` ``(BN,)`` point indices.
    """
    dist = tl.sqrt_rn(d2)  # (BQ, BN) correctly rounded, like torch.sqrt
    fits = (dist <= radius) & (dist < _INF)
    key = (dist.to(tl.int32, bitcast=True).to(tl.int64) << 32) | cols.to(tl.int64)[None, :]  # (BQ, BN)
    key = tl.where(fits, key, _NONE)
    cand = tl.min(key, axis=1)  # (BQ,) best remaining candidate of each row
    worst = tl.max(best, axis=1)  # (BQ,) current k-th best key of each row
    while tl.max((cand < worst).to(tl.int32), axis=0) > 0:
        take = cand < worst  # (BQ,)
        best = tl.where((best == worst[:, None]) & take[:, None], cand[:, None], best)  # (BQ, KP)
        key = tl.where(key == cand[:, None], _NONE, key)  # (BQ, BN)
        cand = tl.min(key, axis=1)
        worst = tl.max(best, axis=1)
    worst_d = (worst >> 32).to(tl.int32).to(tl.float32, bitcast=True)  # (BQ,)
    return best, worst_d


@triton.jit
def _knn_kernel(
    q_ptr,  # [Q, 8] f32, row-major
    p_ptr,  # [8, N] f32, axis-major (coalesced tile loads)
    s_ptr,  # [8] f32 axis scales
    valid_ptr,  # [N] u8, read only when HAS_VALID
    excl_ptr,  # [Q] i64, read only when HAS_EXCLUDE
    out_d_ptr,  # [Q, K] f32
    out_i_ptr,  # [Q, K] i64
    Q,
    N,
    radius,
    K: tl.constexpr,
    KP: tl.constexpr,
    BQ: tl.constexpr,
    BN: tl.constexpr,
    HAS_VALID: tl.constexpr,
    HAS_EXCLUDE: tl.constexpr,
):
    rows = tl.program_id(0) * BQ + tl.arange(0, BQ)  # (BQ,)
    row_ok = rows < Q
    rows64 = rows.to(tl.int64)
    q0 = tl.load(q_ptr + rows64 * 8 + 0, mask=row_ok, other=0.0)
    q1 = tl.load(q_ptr + rows64 * 8 + 1, mask=row_ok, other=0.0)
    q2 = tl.load(q_ptr + rows64 * 8 + 2, mask=row_ok, other=0.0)
    q3 = tl.load(q_ptr + rows64 * 8 + 3, mask=row_ok, other=0.0)
    q4 = tl.load(q_ptr + rows64 * 8 + 4, mask=row_ok, other=0.0)
    q5 = tl.load(q_ptr + rows64 * 8 + 5, mask=row_ok, other=0.0)
    q6 = tl.load(q_ptr + rows64 * 8 + 6, mask=row_ok, other=0.0)
    q7 = tl.load(q_ptr + rows64 * 8 + 7, mask=row_ok, other=0.0)
    s0 = tl.load(s_ptr + 0)
    s1 = tl.load(s_ptr + 1)
    s2 = tl.load(s_ptr + 2)
    s3 = tl.load(s_ptr + 3)
    s4 = tl.load(s_ptr + 4)
    s5 = tl.load(s_ptr + 5)
    s6 = tl.load(s_ptr + 6)
    s7 = tl.load(s_ptr + 7)
    if HAS_EXCLUDE:
        excl = tl.load(excl_ptr + rows64, mask=row_ok, other=-1)  # (BQ,)

    slot = tl.arange(0, KP)  # (KP,)
    slot64 = slot.to(tl.int64)  # int64 first: a scalar operand takes the tensor's type
    init = tl.where(slot < K, (KP - slot64) + _EMPTY, -1 - slot64)  # (KP,)
    best = tl.zeros((BQ, KP), dtype=tl.int64) + init[None, :]  # (BQ, KP)
    worst_d = tl.full((BQ,), float("inf"), tl.float32)  # (BQ,) k-th best distance (inf: list not full)

    for n0 in range(0, N, BN):
        cols = n0 + tl.arange(0, BN)  # (BN,)
        ok = cols < N
        if HAS_VALID:
            ok = ok & (tl.load(valid_ptr + cols, mask=ok, other=0) != 0)
        d2 = _axis_term(q0, s0, tl.load(p_ptr + 0 * N + cols, mask=ok, other=0.0))  # (BQ, BN)
        d2 = d2 + _axis_term(q1, s1, tl.load(p_ptr + 1 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q2, s2, tl.load(p_ptr + 2 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q3, s3, tl.load(p_ptr + 3 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q4, s4, tl.load(p_ptr + 4 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q5, s5, tl.load(p_ptr + 5 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q6, s6, tl.load(p_ptr + 6 * N + cols, mask=ok, other=0.0))
        d2 = d2 + _axis_term(q7, s7, tl.load(p_ptr + 7 * N + cols, mask=ok, other=0.0))
        keep = ok[None, :] & (d2 < _INF)  # (BQ, BN); also drops NaN
        if HAS_EXCLUDE:
            keep = keep & (cols[None, :] != excl[:, None])
        d2 = tl.where(keep, d2, _INF)

        # Tile skipping: merge only if some row's nearest tile point could enter its list.
        near = tl.sqrt_rn(tl.min(d2, axis=1))  # (BQ,)
        hit = (near <= worst_d) & (near <= radius)
        if tl.max(hit.to(tl.int32), axis=0) > 0:
            best, worst_d = _merge_tile(best, d2, cols, radius)

    best = tl.where(best < 0, _NONE, best)  # padding slots sort after the k real ones
    best = tl.sort(best, dim=1)  # (BQ, KP) ascending (distance, index)
    out_d = (best >> 32).to(tl.int32).to(tl.float32, bitcast=True)  # (BQ, KP)
    out_i = tl.where(best < _EMPTY, best & 0x7FFF_FFFF, -1)  # (BQ, KP)
    offs = rows64[:, None] * K + slot[None, :]  # (BQ, KP)
    mask = row_ok[:, None] & (slot[None, :] < K)
    tl.store(out_d_ptr + offs, out_d, mask=mask)
    tl.store(out_i_ptr + offs, out_i, mask=mask)


def launch(
    queries: torch.Tensor,
    points: torch.Tensor,
    k: int,
    radius: float,
    scale: torch.Tensor,
    valid: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    *,
    block_q: int = BLOCK_Q,
    block_n: int = BLOCK_N,
    num_warps: int = NUM_WARPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused kernel on checked, non-empty inputs (see ``knn.knn_triton`` for the semantics).

    Args:
        queries: ``[Q, 8]`` float32, ``Q >= 1``.
        points: ``[N, 8]`` float32, ``1 <= N`` and ``8 N < 2^31``.
        k: neighbours per query, ``1 <= k``.
        radius: largest admitted distance (may be ``inf``).
        scale: ``[8]`` float32 axis scales.
        valid: ``[N]`` bool or ``None``.
        exclude: ``[Q]`` int64 or ``None``.
        block_q: queries per program (a power of two).
        block_n: points per tile (a power of two).
        num_warps: warps per program.

    Returns:
        ``(dist [Q, k] float32, idx [Q, k] int64)``.

    Shapes:
        queries ``[Q, 8]``, points ``[N, 8]`` -> dist, idx ``[Q, k]``.
    """
    n_queries, n_points = queries.shape[0], points.shape[0]
    device = queries.device
    out_d = torch.empty((n_queries, k), dtype=torch.float32, device=device)
    out_i = torch.empty((n_queries, k), dtype=torch.int64, device=device)
    points_t = points.t().contiguous()  # (8, N): one copy, then every tile load is coalesced
    valid_arg = valid.to(torch.uint8) if valid is not None else out_d  # dummy pointer when absent
    excl_arg = exclude.contiguous() if exclude is not None else out_i
    grid = (triton.cdiv(n_queries, block_q),)
    _knn_kernel[grid](
        queries.contiguous(),
        points_t,
        scale.contiguous(),
        valid_arg,
        excl_arg,
        out_d,
        out_i,
        n_queries,
        n_points,
        float(radius),
        K=k,
        KP=max(2, triton.next_power_of_2(k)),  # >= 2 keeps tl.sort on its general path
        BQ=block_q,
        BN=block_n,
        HAS_VALID=valid is not None,
        HAS_EXCLUDE=exclude is not None,
        num_warps=num_warps,
        enable_fp_fusion=False,  # no FMA: distances bit-identical to knn_reference (same ties, same ids)
    )
    return out_d, out_i
