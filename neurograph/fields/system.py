"""The system the potential is evaluated on: token attributes, learned edges, parents and coefficients.

:func:`pack_inputs` gathers, once per ``Engine.step`` call, everything a step needs besides the positions,
velocities and control vector into a :class:`~neurograph.kernels.StepInputs` (re-exported here): packed
attributes, parents, edge tables, the neighbour list, the metric, the constants of :class:`ForceParams`
and the integrator's, and the box. None of it changes while the tokens move (a neighbour-list rebuild
swaps the list only). All tensors keep the token capacity ``C`` as leading dimension (static shapes:
compiled code does not recompile when tokens are inserted under capacity), with dead and unused slots
masked.

Which tokens interact (DESIGN §4; the choices are written down here):

- **pairs from the neighbour list** (soft-sphere repulsion and field wells) act between alive tokens of
  the *same level*: signal tokens push and pull signal tokens, fields of one level act on each other.
  Both terms have a finite range, at most ``radius_i + radius_j``.
- **field wells** are pair energies: the pair ``(i, j)`` carries the well of its *heavier* token
  (``strength * mass``, ``radius`` of the heavier one; none when the masses are equal), so the lighter
  token is pulled toward the heavier one and, by Newton's third law, the heavier one toward it, ``mass``
  times more slowly.
- **springs** run along the alive *learned* edges (every relation group except structural, i.e. the
  edges of the adjacency tables of :class:`~neurograph.state.EdgeState`, hypotheses included), toward the
  edge's rest length with its weight, whatever the levels of the endpoints.
- **structural** ``part_of`` edges (group ``0x60``) are *not* springs: the parent pull is their force
  (``1/2 parent_k d(x_i, x_parent)^2`` for every alive token with an alive parent), and the parent feels
  the reaction of all its children.
- **dead tokens** never move and exert no force.

The packed per-token attribute table ``StepInputs.attr [C, 4] = (radius, mass, strength, code)`` is what
the gather forms read for a neighbour: one 16-byte row. ``code`` is the level for alive tokens and ``-1``
for dead or unused slots.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from neurograph.fields.integrate import Verlet
from neurograph.kernels.step_inputs import (
    ATTR_CODE,
    ATTR_MASS,
    ATTR_RADIUS,
    ATTR_STRENGTH,
    StepInputs,
    children_by_parent,
)
from neurograph.state import EdgeState, TokenState

__all__ = [
    "ATTR_CODE",
    "ATTR_MASS",
    "ATTR_RADIUS",
    "ATTR_STRENGTH",
    "ForceParams",
    "StepInputs",
    "pack_inputs",
    "step_coef",
]


@dataclass(frozen=True)
class ForceParams:
    """The constants of the potential (CDNA fields of the same names)."""

    spring_k: float = 1.0  # spring constant along edges (times edge weight)
    repulsion_k: float = 10.0  # soft-sphere stiffness inside r_i + r_j
    well_k: float = 1.0  # depth scale of field wells (times strength_j * mass_j)
    parent_k: float = 0.5  # pull toward the parent field

    @classmethod
    def from_cdna(cls, cdna: object) -> ForceParams:
        """Read the four constants from a :class:`~neurograph.cdna.CDNA` (or anything with those fields)."""
        return cls(**{f.name: float(getattr(cdna, f.name)) for f in fields(cls)})

    def tensor(self, device: torch.device | str = "cpu") -> Tensor:
        """``[4]`` float32 ``(spring_k, repulsion_k, well_k, parent_k)`` for compiled code and kernels."""
        return torch.tensor([getattr(self, f.name) for f in fields(self)], dtype=torch.float32, device=device)


def step_coef(cdna: Any, device: torch.device | str = "cpu") -> Tensor:
    """``StepInputs.coef [10]`` float32 from a CDNA: :class:`ForceParams` then ``dt, damping, temperature,
    max_speed, max_force, skin / 2`` (the columns ``COEF_*`` of :mod:`neurograph.fields.integrate`)."""
    verlet = Verlet.from_cdna(cdna)
    extra = [verlet.dt, verlet.damping, verlet.temperature, verlet.max_speed, verlet.max_force]
    extra.append(0.5 * float(cdna.skin))
    tail = torch.tensor(extra, dtype=torch.float32, device=device)
    return torch.cat([ForceParams.from_cdna(cdna).tensor(device), tail])


def pack_inputs(
    tokens: TokenState, edges: EdgeState, cdna: Any, nbr: Tensor, pos0: Tensor, *, dense: bool = True
) -> StepInputs:
    """Pack the engine's stores, a neighbour list and the CDNA into the inputs of a step (no copies of the
    edge columns; the adjacency tables are cut or padded to the token capacity).

    Args:
        tokens, edges: the stores.
        cdna: the constitution in force (constants, caps, box, metric, skin).
        nbr: ``[C, k']`` int32 neighbour-list candidates; pos0: ``[C, 8]`` positions at its rebuild.
        dense: build the ``[C, D]`` spring tables the gather forces read (``eager``, ``compiled``,
            ``reference``); else the children of each parent in CSR form, over which the fused kernel
            sums the parent reaction in a fixed order (it gathers the springs by edge slot).

    Returns:
        A :class:`StepInputs` on the stores' device.
    """
    c, dev = tokens.capacity, tokens.device
    code = torch.where(tokens.alive, tokens.level.to(torch.float32), torch.full_like(tokens.mass, -1.0))
    attr = torch.stack([tokens.radius, tokens.mass, tokens.strength, code], dim=1).contiguous()  # (C, 4)
    edge_nbr, edge_slot, degree = (_rows(t, c) for t in (edges.nbr, edges.adj, edges.degree))
    spring_w, spring_rest = _spring_tables(edge_slot, edges.weight, edges.rest) if dense else (None, None)
    child_order, child_start = (None, None) if dense else children_by_parent(tokens.parent, attr)
    lo, hi = Verlet.from_cdna(cdna).box(tokens.pos)
    return StepInputs(
        nbr=nbr,
        pos0=pos0,
        attr=attr,
        parent=tokens.parent,
        edge_nbr=edge_nbr,
        edge_slot=edge_slot,
        degree=degree,
        edge_weight=edges.weight,
        edge_rest=edges.rest,
        edge_src=edges.src,
        edge_dst=edges.dst,
        edge_kind=edges.kind,
        edge_alive=edges.alive,
        scale=torch.tensor(cdna.axis_scale, dtype=torch.float32, device=dev),
        coef=step_coef(cdna, dev),
        lo=lo,
        hi=hi,
        spring_w=spring_w,
        spring_rest=spring_rest,
        child_order=child_order,
        child_start=child_start,
    )


def _spring_tables(edge_slot: Tensor, weight: Tensor, rest: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token spring weight and rest length of each learned edge, ``[C, D]`` each (0 where empty), the
    form the dense gather forces read (no edge-capacity shapes in compiled code)."""
    slot = edge_slot.long().clamp_min(0)  # (C, D)
    has = edge_slot >= 0
    zero = torch.zeros((), dtype=weight.dtype, device=weight.device)
    return torch.where(has, weight[slot], zero), torch.where(has, rest[slot], zero)


def _rows(t: Tensor, rows: int) -> Tensor:
    """``t`` cut or padded (with ``-1`` / ``0``) to ``rows`` leading rows."""
    if t.shape[0] == rows:
        return t
    if t.shape[0] > rows:
        return t[:rows]
    fill = 0 if t.ndim == 1 else -1
    pad = torch.full((rows - t.shape[0], *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
    return torch.cat([t, pad])
