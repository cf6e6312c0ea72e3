"""The oracle: the potential energy in eager torch, and forces as ``-grad`` of it by autograd.

Everything here is written from the energy functions of :mod:`neurograph.fields.energy` lifted to the
system by :func:`~neurograph.fields.lift.lift`, in the plainest layout: pairs from the neighbour list,
springs from the *edge list* of :class:`~neurograph.state.EdgeState` (not from its adjacency tables, so
the two layouts check each other), the parent pull from ``(child, parent)`` pairs. No analytic
derivative appears: forces are ``-dE/dx`` by autograd, which is what the analytic forces of
:mod:`neurograph.fields.forces` and the fused kernel are tested against. Slow, exact, any dtype.

Which pairs interact is documented in :mod:`neurograph.fields.system`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neurograph.fields.energy import parent_energy, repulsion_energy, spring_energy, well_energy
from neurograph.fields.lift import lift
from neurograph.fields.system import ATTR_CODE, ATTR_MASS, ATTR_RADIUS, ATTR_STRENGTH, FieldSystem
from neurograph.kinds import STRUCTURAL_GROUP

__all__ = ["energy_terms", "potential_energy", "reference_forces"]


def energy_terms(pos: Tensor, system: FieldSystem, neighbors: Tensor) -> dict[str, Tensor]:
    """The potential split by term: ``repulsion``, ``well``, ``spring``, ``parent`` (0-d tensors).

    Args:
        pos: ``[C, 8]`` positions (any float dtype; differentiable).
        system: the attributes, edges and constants (:class:`FieldSystem`).
        neighbors: ``[C, k]`` symmetric neighbour list of slots (``-1`` = empty).
    """
    p = system.params
    attr = system.attr.to(pos.dtype)
    radius, mass, strength, code = (attr[:, c] for c in (ATTR_RADIUS, ATTR_MASS, ATTR_STRENGTH, ATTR_CODE))
    scale = system.scale.to(pos.dtype)

    def same_level(i: Tensor, j: Tensor) -> Tensor:
        return (code[i] >= 0) & (code[i] == code[j]) & (i != j)

    def repulsion(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        return repulsion_energy(d, radius[i] + radius[j], p.repulsion_k)

    def well(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        j_heavier = mass[j] > mass[i]
        h = torch.where(j_heavier, j, i)  # the source of the well
        e = well_energy(d, strength[h], mass[h], radius[h], p.well_k)
        return torch.where(mass[i] == mass[j], torch.zeros_like(e), e)

    terms = {
        "repulsion": lift(repulsion, pos, scale, neighbors=neighbors, mask=same_level),
        "well": lift(well, pos, scale, neighbors=neighbors, mask=same_level),
    }

    learned = system.edge_alive & ((system.edge_kind.long() & 0xF0) != STRUCTURAL_GROUP)
    keep = learned.nonzero().squeeze(1)  # (E,) edge slots of alive learned edges
    edge_index = torch.stack([system.edge_src[keep], system.edge_dst[keep]])  # (2, E)
    weight = system.edge_weight[keep].to(pos.dtype)
    rest = system.edge_rest[keep].to(pos.dtype)

    def both_alive(i: Tensor, j: Tensor) -> Tensor:
        return (code[i] >= 0) & (code[j] >= 0)

    def spring(d: Tensor, i: Tensor, j: Tensor) -> Tensor:
        return spring_energy(d, weight, rest, p.spring_k)  # d is in edge order

    terms["spring"] = lift(spring, pos, scale, edges=edge_index, mask=both_alive)

    child = (system.parent >= 0).nonzero().squeeze(1)  # (P,)
    pairs = torch.stack([child, system.parent[child]])  # (2, P) child -> parent
    terms["parent"] = lift(
        lambda d, i, j: parent_energy(d, p.parent_k), pos, scale, edges=pairs, mask=both_alive
    )
    return terms


def potential_energy(pos: Tensor, system: FieldSystem, neighbors: Tensor) -> Tensor:
    """Total potential energy (0-d tensor), the sum of :func:`energy_terms`."""
    return sum(energy_terms(pos, system, neighbors).values())  # type: ignore[return-value]


def reference_forces(pos: Tensor, system: FieldSystem, neighbors: Tensor) -> tuple[Tensor, Tensor]:
    """Forces ``-dE/dx`` by autograd, and the energy.

    Args:
        pos: ``[C, 8]`` positions (not modified).
        system: see :func:`energy_terms`.
        neighbors: ``[C, k]`` neighbour list.

    Returns:
        ``(force [C, 8], energy)`` with ``energy`` a detached 0-d tensor. Dead tokens get zero force.
    """
    with torch.enable_grad():
        x = pos.detach().requires_grad_(True)
        energy = potential_energy(x, system, neighbors)
        (grad,) = torch.autograd.grad(energy, x, allow_unused=False) if energy.requires_grad else (None,)
    force = torch.zeros_like(pos) if grad is None else -grad
    return force, energy.detach()
