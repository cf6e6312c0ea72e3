"""Analytic forces in the dense gather form: what the ``eager`` and ``compiled`` backends run.

Every token ``i`` *gathers* what acts on it, with static shapes and no atomics:

1. its neighbour-list row ``nbr[i, :k]``: positions and packed attributes of the candidates, the radial
   forces of repulsion and wells (``*_force`` of :mod:`neurograph.fields.energy`), masked to alive
   tokens of its own level;
2. its row of the learned-edge tables ``edge_nbr[i, :D]`` (springs, weight and rest length per entry);
3. its parent (the child side of the parent pull); the reaction on parents is one ``index_add``.

The force on ``i`` from a pair is ``f(d) * s * (x_i - x_j) / d`` with ``f = -dE/dd``; the potential energy
is booked half on each token of a pair (the parent pull wholly on the child), so the per-token energies
sum to the system's energy. This is the plain reference beside the fused Triton kernel
(:mod:`neurograph.kernels.force_step`), which computes the same sums in registers; both are tested
against the autograd oracle of :mod:`neurograph.fields.reference`.

Only tensors go in (the positions and a :class:`~neurograph.kernels.StepInputs`; no Python numbers that
change between calls), so ``torch.compile`` of a step built on :func:`gather_forces` compiles once per
capacity.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neurograph.fields.energy import (
    parent_energy,
    repulsion_energy,
    repulsion_force,
    spring_energy,
    spring_force,
    well_energy,
    well_force,
)
from neurograph.fields.lift import safe_norm
from neurograph.kernels.step_inputs import StepInputs

__all__ = ["gather_forces"]


def gather_forces(pos: Tensor, inp: StepInputs) -> tuple[Tensor, Tensor]:
    """Forces ``-grad E`` and per-token potential energies of the whole system.

    Args:
        pos: ``[C, 8]`` positions.
        inp: the step's other tensors (:class:`~neurograph.kernels.StepInputs`, with the dense spring
            tables); read here: ``nbr [C, k]`` (symmetric), ``attr [C, 4]``, ``parent [C]``,
            ``edge_nbr``, ``spring_w``, ``spring_rest [C, D]``, ``scale [8]`` and ``coef``, starting
            ``(spring_k, repulsion_k, well_k, parent_k)``.

    Returns:
        ``(force [C, 8], energy [C])``; dead tokens get zero force and energy.

    Raises:
        ValueError: ``inp`` was packed without the dense spring tables.
    """
    if inp.spring_w is None or inp.spring_rest is None:
        raise ValueError("gather_forces needs the dense spring tables: pack the inputs with dense=True")
    nbr, attr, parent, scale, coef = inp.nbr, inp.attr, inp.parent, inp.scale, inp.coef
    k_spring, k_rep, k_well, k_parent = coef[0], coef[1], coef[2], coef[3]
    r_i, m_i, s_i, c_i = attr.unbind(1)  # (C,) each
    alive = c_i >= 0  # (C,)
    zero = torch.zeros((), dtype=pos.dtype, device=pos.device)

    # 1. repulsion and field wells over the neighbour list
    j = nbr.long()  # (C, k)
    jc = j.clamp_min(0)
    r_j, m_j, s_j, c_j = attr[jc].unbind(-1)  # (C, k) each
    ok = (j >= 0) & (c_j == c_i[:, None]) & alive[:, None]  # (C, k) same level, both alive
    dx = pos[:, None, :] - pos[jc]  # (C, k, 8)
    d = safe_norm((dx * dx * scale).sum(-1))  # (C, k)
    sigma = r_i[:, None] + r_j  # (C, k)
    j_heavier = m_j > m_i[:, None]  # (C, k): the well is j's, else i's, none for equal masses
    has_well = j_heavier | (m_i[:, None] > m_j)
    s_h = torch.where(j_heavier, s_j, s_i[:, None])
    m_h = torch.where(j_heavier, m_j, m_i[:, None])
    r_h = torch.where(j_heavier, r_j, r_i[:, None])
    f = repulsion_force(d, sigma, k_rep) + torch.where(has_well, well_force(d, s_h, m_h, r_h, k_well), zero)
    f = torch.where(ok, f, zero)  # (C, k) radial forces
    force = (torch.where(d > 0, f / d, zero)[..., None] * dx).sum(1)  # (C, 8), times s below
    e = repulsion_energy(d, sigma, k_rep) + torch.where(has_well, well_energy(d, s_h, m_h, r_h, k_well), zero)
    energy = 0.5 * torch.where(ok, e, zero).sum(1)  # (C,)

    # 2. springs along the learned edges
    je = inp.edge_nbr.long()  # (C, D)
    jec = je.clamp_min(0)
    ok_e = (je >= 0) & alive[:, None] & (attr[jec, 3] >= 0)  # (C, D) both alive
    dxe = pos[:, None, :] - pos[jec]  # (C, D, 8)
    de = safe_norm((dxe * dxe * scale).sum(-1))  # (C, D)
    spring_w, spring_rest = inp.spring_w, inp.spring_rest  # (C, D) each
    fe = torch.where(ok_e, spring_force(de, spring_w, spring_rest, k_spring), zero)  # (C, D)
    force = force + (torch.where(de > 0, fe / de, zero)[..., None] * dxe).sum(1)  # (C, 8)
    energy = energy + 0.5 * torch.where(ok_e, spring_energy(de, spring_w, spring_rest, k_spring), zero).sum(1)
    force = force * scale

    # 3. the parent pull: dE/dx_i = k s (x_i - x_p) on the child, the opposite on the parent
    pc = parent.clamp_min(0)  # (C,)
    ok_p = (parent >= 0) & alive & (attr[pc, 3] >= 0)  # (C,)
    dxp = pos - pos[pc]  # (C, 8)
    pull = torch.where(ok_p[:, None], k_parent * scale * dxp, zero)  # (C, 8)
    force = (force - pull).index_add(0, pc, pull)
    energy = energy + torch.where(ok_p, parent_energy(safe_norm((dxp * dxp * scale).sum(-1)), k_parent), zero)
    return force, energy
