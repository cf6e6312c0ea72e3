"""The fused force-field step behind :func:`neurograph.kernels.force_step_triton`, and its launcher.

This module imports triton at the top, so it is imported only when the kernel first launches
(``force_step.force_step_triton`` does it lazily); ``TRITON_INTERPRET=1`` must be set before that moment
to run the kernel on CPU tensors with the Triton interpreter.

One program owns ``BLOCK`` consecutive tokens and does, in registers, the whole step of
:func:`neurograph.fields.integrate.leapfrog_step` with the forces of
:func:`neurograph.fields.forces.gather_forces`:

1. **Gather.** Its rows of the neighbour list ``nbr [C, K]`` as a ``(BLOCK, KP)`` tile, the candidates'
   position rows (32 bytes, one sector each) as a ``(BLOCK, KP, 8)`` tile and their packed attributes
   ``(radius, mass, strength, code)`` (16 bytes); the learned edges likewise from ``edge_nbr`` /
   ``edge_slot``, ``SPRING_SLOTS`` entries at a time up to the largest degree in the block (empty table
   entries are never loaded), with the weight and rest length gathered by edge slot; the parent's
   position.
2. **Forces in registers.** Weighted distances, the radial forces of repulsion, wells and springs,
   reduced over the tile to one 8-vector per token; the parent pull; when some token has a parent, the
   reaction of its children on a parent (``sum of x_child - x_parent``), gathered by the parent's own
   program from its children in CSR form (``StepInputs.child_order`` / ``child_start``, sorted once per
   set of inputs by :func:`~neurograph.kernels.step_inputs.children_by_parent`), ``SPRING_SLOTS`` at a
   time up to the block's largest number of children. Each parent sums its children in the same order
   every step: no float atomics, so the step is deterministic.
3. **Integrate and write out of place.** Force cap, the previous step's half kick and Ornstein-Uhlenbeck
   step (Philox normal noise keyed by ``seed`` and the element index), speed cap, this step's half kick,
   drift, box; new positions and velocities go to separate output buffers, so no program reads a row
   another one has already overwritten.
4. **Control.** Every program checks the neighbour list's validity from ``ctl_in`` (largest displacement
   since the rebuild ``<= skin/2``, no overflow) and leaves its rows unchanged otherwise; it folds its
   rows' displacement from ``pos0`` into ``ctl_out[0]`` by ``atomic_max``; program 0 writes the steps-done
   counter and the overflow flag to ``ctl_out`` and zeroes ``ctl_reset``, the buffer the *next* launch
   will use as its output, so that buffer's atomic maximum starts from 0 after a rebuild (three rotating
   control buffers instead of a second launch per step).

``FINALIZE`` launches only complete the last step (no drift) and write per-program partial sums of the
potential and kinetic energy, reduced by torch afterwards (deterministic, no float atomics).

**Determinism.** Every sum of a step has a fixed order: a token's forces over its neighbour-list row,
its learned edges and its children (tile reductions, chunks in order), the energies by program then by
torch. The only atomic is the ``atomic_max`` of the displacement, exact in any order. So the same
inputs (state, :class:`StepInputs`, seed) give bit-identical outputs on the same GPU and Triton build.

Block size: ``BLOCK = 32`` tokens and ``K = 16`` neighbours make a ``(32, 16, 8)`` fp32 tile, 32 registers a
thread at 4 warps, like the force kernel of ``../shared/bench/gpu_limits.py``; a first choice, not tuned
on hardware yet (:func:`launch` takes it as an argument).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from neurograph.kernels.step_inputs import StepInputs

__all__ = ["BLOCK", "NUM_WARPS", "SPRING_SLOTS", "launch"]

BLOCK = 32  # tokens per program
NUM_WARPS = 4  # warps per program
SPRING_SLOTS = 8  # learned-edge table entries per inner iteration: a (32, 8, 8) tile


@triton.jit
def _cap(v, limit):
    """Rows of ``v`` ``(B, 8)`` scaled down to Euclidean norm ``<= limit``."""
    norm = tl.sqrt(tl.sum(v * v, axis=1))  # (B,)
    over = norm > limit
    return tl.where(over[:, None], v * (limit / tl.where(over, norm, 1.0))[:, None], v)


@triton.jit(do_not_specialize=["seed"])
def _force_step_kernel(
    x_ptr,  # [C, 8] f32 positions
    u_ptr,  # [C, 8] f32 velocities (half-step)
    ctl_ptr,  # [3] f32 in: max displacement, steps done, overflow
    x0_ptr,  # [C, 8] f32 positions at the last rebuild
    nbr_ptr,  # [C, K] i32 neighbour candidates (-1 empty)
    attr_ptr,  # [C, 4] f32 radius, mass, strength, code (level; -1 dead)
    parent_ptr,  # [C] i64
    enbr_ptr,  # [C, D] i32 other endpoint of each learned edge
    eslot_ptr,  # [C, D] i32 edge slot of each learned edge
    deg_ptr,  # [C] i32 learned edges per token
    ew_ptr,  # [Ec] f32 edge weight
    er_ptr,  # [Ec] f32 edge rest length
    scale_ptr,  # [8] f32 axis scales
    coef_ptr,  # [10] f32 spring_k, repulsion_k, well_k, parent_k, dt, damping, T, vmax, fmax, skin/2
    lo_ptr,  # [8] f32 box
    hi_ptr,  # [8] f32 box
    corder_ptr,  # [C] i32 children sorted by parent (CSR), read when HAS_PARENTS
    cstart_ptr,  # [C + 1] i32 first child of each parent in corder
    x_out_ptr,  # [C, 8] f32 out
    u_out_ptr,  # [C, 8] f32 out
    ctl_out_ptr,  # [3] f32 out
    ctl_reset_ptr,  # [3] f32 zeroed for the next launch
    part_ptr,  # [programs, 2] f32 out (FINALIZE): potential, kinetic
    C,
    seed,  # int64 Philox key of this step
    K: tl.constexpr,
    KP: tl.constexpr,
    D: tl.constexpr,
    SD: tl.constexpr,
    BLOCK: tl.constexpr,
    HAS_PARENTS: tl.constexpr,
    NOISE: tl.constexpr,
    FINALIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK + tl.arange(0, BLOCK)  # (B,)
    row_ok = rows < C
    r64 = rows.to(tl.int64)
    ax = tl.arange(0, 8)  # (8,)
    s = tl.load(scale_ptr + ax)  # (8,)
    k_spring = tl.load(coef_ptr + 0)
    k_rep = tl.load(coef_ptr + 1)
    k_well = tl.load(coef_ptr + 2)
    k_parent = tl.load(coef_ptr + 3)
    dt = tl.load(coef_ptr + 4)
    damping = tl.load(coef_ptr + 5)
    temperature = tl.load(coef_ptr + 6)
    vmax = tl.load(coef_ptr + 7)
    fmax = tl.load(coef_ptr + 8)
    half_skin = tl.load(coef_ptr + 9)
    max_disp = tl.load(ctl_ptr + 0)
    done = tl.load(ctl_ptr + 1)
    overflow = tl.load(ctl_ptr + 2)

    offs = r64[:, None] * 8 + ax[None, :]  # (B, 8)
    xi = tl.load(x_ptr + offs, mask=row_ok[:, None], other=0.0)  # (B, 8)
    ui = tl.load(u_ptr + offs, mask=row_ok[:, None], other=0.0)
    r_i = tl.load(attr_ptr + r64 * 4 + 0, mask=row_ok, other=1.0)  # (B,)
    m_i = tl.load(attr_ptr + r64 * 4 + 1, mask=row_ok, other=1.0)
    s_i = tl.load(attr_ptr + r64 * 4 + 2, mask=row_ok, other=0.0)
    c_i = tl.load(attr_ptr + r64 * 4 + 3, mask=row_ok, other=-1.0)
    alive = c_i >= 0

    # 1. repulsion and wells over the neighbour list
    kk = tl.arange(0, KP)  # (KP,)
    j = tl.load(nbr_ptr + r64[:, None] * K + kk[None, :], mask=row_ok[:, None] & (kk[None, :] < K), other=-1)
    has = (j >= 0) & alive[:, None]  # (B, KP)
    j64 = tl.where(has, j, 0).to(tl.int64)
    xj = tl.load(
        x_ptr + j64[:, :, None] * 8 + ax[None, None, :], mask=has[:, :, None], other=0.0
    )  # (B, KP, 8)
    r_j = tl.load(attr_ptr + j64 * 4 + 0, mask=has, other=1.0)  # (B, KP)
    m_j = tl.load(attr_ptr + j64 * 4 + 1, mask=has, other=1.0)
    s_j = tl.load(attr_ptr + j64 * 4 + 2, mask=has, other=0.0)
    c_j = tl.load(attr_ptr + j64 * 4 + 3, mask=has, other=-2.0)
    ok = has & (c_j == c_i[:, None])
    dx = xi[:, None, :] - xj  # (B, KP, 8)
    d = tl.sqrt(tl.sum(dx * dx * s[None, None, :], axis=2))  # (B, KP)
    sigma = r_i[:, None] + r_j
    t = 1.0 - d / sigma
    rep = t > 0
    f = tl.where(rep, k_rep / sigma * t, 0.0)
    e = tl.where(rep, 0.5 * k_rep * t * t, 0.0)
    j_heavy = m_j > m_i[:, None]
    well = j_heavy | (m_i[:, None] > m_j)
    depth = k_well * tl.where(j_heavy, s_j * m_j, (s_i * m_i)[:, None])  # (B, KP)
    r_h = tl.where(j_heavy, r_j, r_i[:, None])
    in_well = well & (d < r_h)
    r_h = tl.where(in_well, r_h, 1.0)  # no 0/0 on masked lanes
    f += tl.where(in_well, -depth / r_h, 0.0)
    e += tl.where(in_well, -depth * (1.0 - d / r_h), 0.0)
    coef = tl.where(ok & (d > 0), f / tl.where(d > 0, d, 1.0), 0.0)  # (B, KP)
    force = tl.sum(coef[:, :, None] * dx, axis=1)  # (B, 8)
    pot = 0.5 * tl.sum(tl.where(ok, e, 0.0), axis=1)  # (B,)

    # 2. springs along the learned edges, SD table entries at a time up to the block's largest degree
    #    (entries past a token's degree are never loaded: no traffic, and the tile stays small)
    if D > 0:
        deg = tl.load(deg_ptr + r64, mask=row_ok & alive, other=0)  # (B,)
        dd = tl.arange(0, SD)  # (SD,)
        for c0 in range(0, tl.max(deg, axis=0), SD):
            col = c0 + dd
            emask = (col[None, :] < deg[:, None]) & (col[None, :] < D)  # (B, SD)
            je = tl.load(enbr_ptr + r64[:, None] * D + col[None, :], mask=emask, other=-1)
            es = tl.load(eslot_ptr + r64[:, None] * D + col[None, :], mask=emask, other=-1)
            hase = emask & (je >= 0) & (es >= 0)
            je64 = tl.where(hase, je, 0).to(tl.int64)
            es64 = tl.where(hase, es, 0).to(tl.int64)
            hase = hase & (tl.load(attr_ptr + je64 * 4 + 3, mask=hase, other=-1.0) >= 0)
            xe = tl.load(x_ptr + je64[:, :, None] * 8 + ax[None, None, :], mask=hase[:, :, None], other=0.0)
            w = tl.load(ew_ptr + es64, mask=hase, other=0.0)  # (B, SD)
            rest = tl.load(er_ptr + es64, mask=hase, other=0.0)
            dxe = xi[:, None, :] - xe  # (B, SD, 8)
            de = tl.sqrt(tl.sum(dxe * dxe * s[None, None, :], axis=2))  # (B, SD)
            stretch = de - rest
            fe = -k_spring * w * stretch
            inv = tl.where(hase & (de > 0), 1.0 / tl.where(de > 0, de, 1.0), 0.0)
            force += tl.sum((fe * inv)[:, :, None] * dxe, axis=1)
            pot += 0.5 * tl.sum(tl.where(hase, 0.5 * k_spring * w * stretch * stretch, 0.0), axis=1)
    force = force * s[None, :]

    # 3. the parent pull (child side), and the reaction of the children on a parent
    p = tl.load(parent_ptr + r64, mask=row_ok, other=-1)  # (B,) int64
    hasp = alive & (p >= 0)
    p64 = tl.where(hasp, p, 0)
    hasp = hasp & (tl.load(attr_ptr + p64 * 4 + 3, mask=hasp, other=-1.0) >= 0)
    xp = tl.load(x_ptr + p64[:, None] * 8 + ax[None, :], mask=hasp[:, None], other=0.0)  # (B, 8)
    dxp = tl.where(hasp[:, None], xi - xp, 0.0)
    force -= k_parent * s[None, :] * dxp
    pot += 0.5 * k_parent * tl.sum(dxp * dxp * s[None, :], axis=1)
    if HAS_PARENTS:  # sum over this row's children, SD at a time in CSR order: no atomics, fixed order
        c_lo = tl.load(cstart_ptr + r64, mask=row_ok & alive, other=0)  # (B,)
        n_ch = tl.load(cstart_ptr + r64 + 1, mask=row_ok & alive, other=0) - c_lo
        cd = tl.arange(0, SD)  # (SD,)
        cs = tl.zeros((BLOCK, 8), dtype=tl.float32)
        for c0 in range(0, tl.max(n_ch, axis=0), SD):
            col = c0 + cd
            cmask = col[None, :] < n_ch[:, None]  # (B, SD)
            ch = tl.load(corder_ptr + (c_lo[:, None] + col[None, :]).to(tl.int64), mask=cmask, other=0)
            xc = tl.load(
                x_ptr + ch.to(tl.int64)[:, :, None] * 8 + ax[None, None, :], mask=cmask[:, :, None], other=0.0
            )  # (B, SD, 8)
            cs += tl.sum(tl.where(cmask[:, :, None], xc - xi[:, None, :], 0.0), axis=1)
        force += k_parent * s[None, :] * cs

    # 4. integrate: complete the previous step (B O), then this one's B A
    force = tl.where(alive[:, None], _cap(force, fmax), 0.0)
    m = tl.where(alive, m_i, 1.0)  # (B,)
    a = (0.5 * dt) * force / m[:, None]  # (B, 8)
    c1 = tl.exp(-damping * dt / m)  # (B,)
    w_new = c1[:, None] * (ui + a)
    if NOISE:
        c2 = tl.sqrt(tl.maximum(1.0 - c1 * c1, 0.0) * temperature / m)
        w_new += c2[:, None] * tl.randn(seed, offs.to(tl.int32))
    w_new = _cap(w_new, vmax)
    v = tl.where(done > 0, w_new, ui)  # (B, 8): the velocity at the time of xi
    if FINALIZE:
        kin = 0.5 * m * tl.sum(v * v, axis=1)
        tl.store(u_out_ptr + offs, tl.where(alive[:, None], v, ui), mask=row_ok[:, None])
        tl.store(part_ptr + pid * 2 + 0, tl.sum(tl.where(alive & row_ok, pot, 0.0), axis=0))
        tl.store(part_ptr + pid * 2 + 1, tl.sum(tl.where(alive & row_ok, kin, 0.0), axis=0))
    else:
        holds = (max_disp <= half_skin) & (overflow == 0)  # the neighbour list can be trusted
        u_new = _cap(v + a, vmax)
        x_new = xi + dt * u_new
        lo = tl.load(lo_ptr + ax)[None, :]
        hi = tl.load(hi_ptr + ax)[None, :]
        out = ((x_new < lo) & (u_new < 0)) | ((x_new > hi) & (u_new > 0))
        x_new = tl.minimum(tl.maximum(x_new, lo), hi)
        u_new = tl.where(out, 0.0, u_new)
        move = (alive & ((c_i * 0.0 + max_disp) <= half_skin) & ((c_i * 0.0 + overflow) == 0))[:, None]
        x_new = tl.where(move, x_new, xi)
        u_new = tl.where(move, u_new, ui)
        tl.store(x_out_ptr + offs, x_new, mask=row_ok[:, None])
        tl.store(u_out_ptr + offs, u_new, mask=row_ok[:, None])
        diff = x_new - tl.load(x0_ptr + offs, mask=row_ok[:, None], other=0.0)
        disp = tl.where(alive & row_ok, tl.sqrt(tl.sum(diff * diff * s[None, :], axis=1)), 0.0)
        tl.atomic_max(ctl_out_ptr + 0, tl.maximum(tl.max(disp, axis=0), max_disp))
        if pid == 0:
            tl.store(ctl_out_ptr + 1, done + holds.to(tl.float32))
            tl.store(ctl_out_ptr + 2, overflow)
            tl.store(ctl_reset_ptr + 0, 0.0)


def launch(
    pos: torch.Tensor,
    vel: torch.Tensor,
    ctl: torch.Tensor,
    inp: StepInputs,
    *,
    pos_out: torch.Tensor,
    vel_out: torch.Tensor,
    ctl_out: torch.Tensor,
    ctl_reset: torch.Tensor,
    parents: bool,
    seed: int,
    noise: bool,
    finalize: bool,
    block: int = BLOCK,
    num_warps: int = NUM_WARPS,
) -> torch.Tensor | None:
    """Launch one step (or finalize) on checked tensors (the arguments of ``force_step.force_step_triton``).

    Args:
        pos, vel, ctl: the state (``[C, 8]``, ``[C, 8]``, ``[3]``).
        inp: the step's other tensors (:class:`~neurograph.kernels.StepInputs`).
        pos_out, vel_out, ctl_out, ctl_reset: the outputs and the control buffer to zero.
        parents: add the children's reaction on their parents (over ``inp.child_order`` /
            ``inp.child_start``; ``False``: no token has a parent).
        seed: 64-bit Philox key of this step.
        noise: draw Langevin noise.
        finalize: complete the last step only; returns the per-program ``[programs, 2]`` energy sums.
        block: tokens per program (a power of two).
        num_warps: warps per program.
    """
    c, k = inp.nbr.shape
    d = inp.edge_nbr.shape[1]
    grid = (triton.cdiv(c, block),)
    part = torch.empty((grid[0], 2), dtype=torch.float32, device=pos.device) if finalize else ctl
    _force_step_kernel[grid](
        pos,
        vel,
        ctl,
        inp.pos0,
        inp.nbr,
        inp.attr,
        inp.parent,
        inp.edge_nbr,
        inp.edge_slot,
        inp.degree,
        inp.edge_weight,
        inp.edge_rest,
        inp.scale,
        inp.coef,
        inp.lo,
        inp.hi,
        inp.child_order if parents else inp.nbr,  # dummy pointers when absent
        inp.child_start if parents else inp.nbr,
        pos_out,
        vel_out,
        ctl_out,
        ctl_reset,
        part,
        c,
        seed,
        K=k,
        KP=max(2, triton.next_power_of_2(k)),
        D=d,
        SD=SPRING_SLOTS,
        BLOCK=block,
        HAS_PARENTS=parents,
        NOISE=noise,
        FINALIZE=finalize,
        num_warps=num_warps,
    )
    return part if finalize else None
