"""The system the potential is evaluated on: token attributes, learned edges, parents and coefficients.

A :class:`FieldSystem` gathers, once per ``Engine.step`` call, everything the potential needs besides the
positions and the neighbour list: it does not change while the tokens move. All tensors keep the token
capacity ``C`` as leading dimension (static shapes: compiled code does not recompile when tokens are
inserted under capacity), with dead and unused slots masked.

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

The packed per-token attribute table ``attr [C, 4] = (radius, mass, strength, code)`` is what the
gather forms read for a neighbour: one 16-byte row. ``code`` is the level for alive tokens and ``-1``
for dead or unused slots.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from neurograph.state import EdgeState, TokenState

__all__ = ["ATTR_CODE", "ATTR_MASS", "ATTR_RADIUS", "ATTR_STRENGTH", "FieldSystem", "ForceParams"]

ATTR_RADIUS, ATTR_MASS, ATTR_STRENGTH, ATTR_CODE = 0, 1, 2, 3  # columns of FieldSystem.attr


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


@dataclass(frozen=True, eq=False)
class FieldSystem:
    """Token attributes, learned-edge tables, parents, metric and constants of one dynamics call.

    Shapes:
        attr ``[C, 4]`` float32 (radius, mass, strength, code: level, ``-1`` dead);
        parent ``[C]`` int64 (slot, ``-1`` none); edge_nbr, edge_slot ``[C, D]`` int32 (other endpoint and
        edge slot of each learned edge of a token, ``-1`` empty); degree ``[C]`` int32;
        edge_weight, edge_rest ``[Ec]`` float32; edge_src, edge_dst ``[Ec]`` int64, edge_kind ``[Ec]``
        int16 and edge_alive ``[Ec]`` bool (the edge list, read by the autograd reference); scale ``[8]``.
    """

    attr: Tensor
    parent: Tensor
    edge_nbr: Tensor
    edge_slot: Tensor
    degree: Tensor
    edge_weight: Tensor
    edge_rest: Tensor
    edge_src: Tensor
    edge_dst: Tensor
    edge_kind: Tensor
    edge_alive: Tensor
    scale: Tensor
    params: ForceParams

    @classmethod
    def from_state(
        cls, tokens: TokenState, edges: EdgeState, scale: Tensor, params: ForceParams
    ) -> FieldSystem:
        """Pack the engine's stores (no copies of the edge columns; the adjacency tables are cut or padded
        to the token capacity)."""
        c = tokens.capacity
        code = torch.where(tokens.alive, tokens.level.to(torch.float32), torch.full_like(tokens.mass, -1.0))
        attr = torch.stack([tokens.radius, tokens.mass, tokens.strength, code], dim=1)  # (C, 4)
        edge_nbr, edge_slot, degree = (_rows(t, c) for t in (edges.nbr, edges.adj, edges.degree))
        return cls(
            attr=attr.contiguous(),
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
            scale=scale.to(device=tokens.device, dtype=torch.float32),
            params=params,
        )

    @property
    def capacity(self) -> int:
        return self.attr.shape[0]

    @property
    def device(self) -> torch.device:
        return self.attr.device

    @property
    def mass(self) -> Tensor:
        """``[C]`` masses."""
        return self.attr[:, ATTR_MASS]

    @property
    def alive(self) -> Tensor:
        """``[C]`` bool: alive (and used) slots."""
        return self.attr[:, ATTR_CODE] >= 0

    def spring_tables(self) -> tuple[Tensor, Tensor]:
        """Per-token spring weight and rest length of each learned edge, ``[C, D]`` each (0 where empty),
        the form the dense gather forces read (no edge-capacity shapes in compiled code)."""
        slot = self.edge_slot.long().clamp_min(0)  # (C, D)
        has = self.edge_slot >= 0
        zero = torch.zeros((), dtype=self.edge_weight.dtype, device=self.device)
        return torch.where(has, self.edge_weight[slot], zero), torch.where(has, self.edge_rest[slot], zero)

    def __repr__(self) -> str:
        return (
            f"FieldSystem(capacity={self.capacity}, max_degree={self.edge_slot.shape[1]}, "
            f"device={str(self.device)!r}, params={self.params})"
        )


def _rows(t: Tensor, rows: int) -> Tensor:
    """``t`` cut or padded (with ``-1`` / ``0``) to ``rows`` leading rows."""
    if t.shape[0] == rows:
        return t
    if t.shape[0] > rows:
        return t[:rows]
    fill = 0 if t.ndim == 1 else -1
    pad = torch.full((rows - t.shape[0], *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
    return torch.cat([t, pad])
