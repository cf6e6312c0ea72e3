"""The oracle: the potential energy in eager torch, and forces as ``-grad`` of it by autograd.

Everything here is written from the energy functions of :mod:`neurograph.fields.energy` lifted to the
system by :func:`~neurograph.fields.lift.lift`, in the plainest layout: pairs from the neighbour list,
springs from the *edge list* of :class:`~neurograph.state.EdgeState` (not from its adjacency tables, so
the two layouts check each other), the parent pull from ``(child, parent)`` pairs. No analytic
derivative appears: forces are ``-dE/dx`` by autograd, which is what the analytic forces of
:mod:`neurograph.fields.forces` and the fused kernel are tested against. Slow, exact, any dtype. It reads
the same :class:`~neurograph.kernels.StepInputs` as every backend, constants included (``coef``, cast to
the dtype of the positions).

Which pairs interact is documented in :mod:`neurograph.fields.system`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neurograph.fields.energy import parent_energy, repulsion_energy, spring_energy, well_energy
from neurograph.fields.lift import lift
from neurograph.kernels.step_inputs import StepInputs
from neurograph.kinds import STRUCTURAL_GROUP

__all__ = ["energy_terms", "potential_energy", "reference_forces"]


def energy_terms(pos: Tensor, inp: StepInputs) -> dict[str, Tensor]:
    """The potential split by term: ``repulsion``, ``well``, ``spring``, ``parent`` (0-d tensors).

    Args:
        pos: ``[C, 8]`` positions (any float dtype; differentiable).
        inp: the step's other tensors (:class:`~neurograph.kernels.StepInputs`); read here: ``nbr [C, k]``
            (symmetric, ``-1`` empty), ``attr [C, 4]``, ``parent [C]``, the edge list ``edge_src``,
            ``edge_dst``, ``edge_kind``, ``edge_alive``, ``edge_weight``, ``edge_rest [Ec]``, ``scale [8]``
            and the constants ``coef[:4]``, all cast to the dtype of ``pos``.
    """
    k_spring, k_rep, k_well, k_parent = inp.coef[:4].to(pos.dtype).unbind()
    radius, mass, strength, code = inp.attr.to(pos.dtype).unbind(1)  # (C,) each
    scale = inp.scale.to(pos.dtype)

    def same_level(i: Tensor, j: Tensor) -> Tensor:
        return (code[i] >= 0) & (code[i] == code[j]) & (i != j)

    def repulsion(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        return repulsion_energy(d, radius[i] + radius[j], k_rep)

    def well(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        j_heavier = mass[j] > mass[i]
        h = torch.where(j_heavier, j, i)  # the source of the well
        e = well_energy(d, strength[h], mass[h], radius[h], k_well)
        return torch.where(mass[i] == mass[j], torch.zeros_like(e), e)

    terms = {
        "repulsion": lift(repulsion, pos, scale, neighbors=inp.nbr, mask=same_level),
        "well": lift(well, pos, scale, neighbors=inp.nbr, mask=same_level),
    }

    learned = inp.edge_alive & ((inp.edge_kind.long() & 0xF0) != STRUCTURAL_GROUP)
    keep = learned.nonzero().squeeze(1)  # (E,) edge slots of alive learned edges
    edge_index = torch.stack([inp.edge_src[keep], inp.edge_dst[keep]])  # (2, E)
    weight = inp.edge_weight[keep].to(pos.dtype)
    rest = inp.edge_rest[keep].to(pos.dtype)

    def both_alive(i: Tensor, j: Tensor) -> Tensor:
        return (code[i] >= 0) & (code[j] >= 0)

    def spring(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        return spring_energy(d, weight, rest, k_spring)  # d is in edge order

    terms["spring"] = lift(spring, pos, scale, edges=edge_index, mask=both_alive)

    child = (inp.parent >= 0).nonzero().squeeze(1)  # (P,)
    pairs = torch.stack([child, inp.parent[child]])  # (2, P) child -> parent
    terms["parent"] = lift(
        lambda d, i, j: parent_energy(d, k_parent), pos, scale, edges=pairs, mask=both_alive
    )
    return terms


def potential_energy(pos: Tensor, inp: StepInputs) -> Tensor:
    """Total potential energy (0-d tensor), the sum of :func:`energy_terms`."""
    return sum(energy_terms(pos, inp).values())  # type: ignore[return-value]


def reference_forces(pos: Tensor, inp: StepInputs) -> tuple[Tensor, Tensor]:
    """Forces ``-dE/dx`` by autograd, and the energy.

    Args:
        pos: ``[C, 8]`` positions (not modified).
        inp: see :func:`energy_terms`.

    Returns:
        ``(force [C, 8], energy)`` with ``energy`` a detached 0-d tensor. Dead tokens get zero force.
    """
    with torch.enable_grad():
        x = pos.detach().requires_grad_(True)
        energy = potential_energy(x, inp)
        (grad,) = torch.autograd.grad(energy, x, allow_unused=False) if energy.requires_grad else (None,)
    force = torch.zeros_like(pos) if grad is None else -grad
    return force, energy.detach()
