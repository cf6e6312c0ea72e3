"""The tensors one force-field step reads, in one frozen container: :class:`StepInputs`.

A step maps the state ``(pos, vel, ctl)`` to the next state; everything else it reads (packed token
attributes, parents, the neighbour list, the learned edges, the metric, the constants and the box) is a
:class:`StepInputs`, the same object for every backend (``reference``, ``eager``, ``compiled``,
``triton``), for the references and for the kernel wrapper. It stays constant while the neighbour list
holds: a rebuild swaps ``nbr`` and ``pos0`` (:meth:`StepInputs.with_neighbors`). Every tensor has the
token capacity ``C`` (or the edge capacity ``Ec``) as leading dimension, so compiled code that reads it
does not recompile when tokens are inserted under capacity.

It lives in :mod:`neurograph.kernels` because the kernel wrapper takes it and kernels never import
:mod:`neurograph.fields`; :func:`neurograph.fields.pack_inputs` fills it from the engine's stores and
:mod:`neurograph.fields` re-exports it. Only shapes, dtypes and devices are ever read on the host: no
sync.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

__all__ = ["ATTR_CODE", "ATTR_MASS", "ATTR_RADIUS", "ATTR_STRENGTH", "StepInputs", "children_by_parent"]

ATTR_RADIUS, ATTR_MASS, ATTR_STRENGTH, ATTR_CODE = 0, 1, 2, 3  # columns of StepInputs.attr


@dataclass(frozen=True, eq=False)
class StepInputs:
    """Everything a step reads besides the state ``(pos, vel, ctl)``.

    Shapes:
        nbr ``[C, k']`` int32: neighbour-list candidates (slots, ``-1`` empty), symmetric;
        pos0 ``[C, 8]`` float32: positions at the neighbour-list rebuild;
        attr ``[C, 4]`` float32: ``(radius, mass, strength, code)`` per token, code the level of an alive
        token and ``-1`` for a dead or unused slot (one 16-byte row per gather);
        parent ``[C]`` int64: parent slot (``-1`` none);
        edge_nbr, edge_slot ``[C, D]`` int32: other endpoint and edge slot of each learned edge of a token
        (``-1`` empty); degree ``[C]`` int32: learned edges per token;
        edge_weight, edge_rest ``[Ec]`` float32: spring weight and rest length by edge slot;
        edge_src, edge_dst ``[Ec]`` int64, edge_kind ``[Ec]`` int16, edge_alive ``[Ec]`` bool: the edge
        list (read by the autograd reference only);
        scale ``[8]`` float32: axis scales of the metric;
        coef ``[10]`` float32: ``(spring_k, repulsion_k, well_k, parent_k, dt, damping, temperature,
        max_speed, max_force, skin / 2)``;
        lo, hi ``[8]`` float32: the box;
        spring_w, spring_rest ``[C, D]`` float32 or ``None``: weight and rest length of each entry of
        ``edge_nbr`` (0 where empty), the dense tables the gather forces read (``None`` for the fused
        kernel, which gathers them by edge slot);
        child_order ``[C]`` int32 and child_start ``[C + 1]`` int32 or ``None``: the children of each
        parent in CSR form (:func:`children_by_parent`), what the fused kernel sums the parent reaction
        over (``None`` for the gather forces, which add it with ``index_add``).
    """

    nbr: Tensor
    pos0: Tensor
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
    coef: Tensor
    lo: Tensor
    hi: Tensor
    spring_w: Tensor | None = None
    spring_rest: Tensor | None = None
    child_order: Tensor | None = None
    child_start: Tensor | None = None

    @property
    def capacity(self) -> int:
        """``C``: token slots."""
        return self.attr.shape[0]

    @property
    def device(self) -> torch.device:
        return self.attr.device

    @property
    def dense(self) -> bool:
        """Whether the dense spring tables are present (what the gather forces need)."""
        return self.spring_w is not None and self.spring_rest is not None

    @property
    def radius(self) -> Tensor:
        """``[C]`` radii (a view of ``attr``)."""
        return self.attr[:, ATTR_RADIUS]

    @property
    def mass(self) -> Tensor:
        """``[C]`` masses (a view of ``attr``)."""
        return self.attr[:, ATTR_MASS]

    @property
    def strength(self) -> Tensor:
        """``[C]`` field strengths (a view of ``attr``)."""
        return self.attr[:, ATTR_STRENGTH]

    @property
    def code(self) -> Tensor:
        """``[C]`` level of alive tokens, ``-1`` for dead or unused slots (a view of ``attr``)."""
        return self.attr[:, ATTR_CODE]

    @property
    def alive(self) -> Tensor:
        """``[C]`` bool: alive (and used) slots."""
        return self.attr[:, ATTR_CODE] >= 0

    def with_neighbors(self, nbr: Tensor, pos0: Tensor) -> StepInputs:
        """The same inputs over a rebuilt neighbour list (``nbr [C, k']``, ``pos0 [C, 8]``)."""
        return replace(self, nbr=nbr, pos0=pos0)

    def __repr__(self) -> str:
        parts = [f"{f.name}={_describe(getattr(self, f.name))}" for f in fields(self)]
        return f"StepInputs(device={str(self.device)!r}, " + ", ".join(parts) + ")"


def children_by_parent(parent: Tensor, attr: Tensor) -> tuple[Tensor, Tensor]:
    """The children of every parent in CSR form, in a fixed order: what makes the parent reaction of the
    fused kernel a deterministic sum (each parent adds its children's pulls itself, one after the other,
    instead of children adding into their parent with float atomics in whatever order they run).

    Only alive tokens with an alive parent count (liveness from ``attr``'s code column). Built with torch
    ops on the device of ``parent`` (a stable sort and a binary search, no host sync), once per set of
    inputs: parents and liveness do not change while the tokens move.

    Shapes:
        parent ``[C]`` int64 (``-1`` none), attr ``[C, 4]`` -> ``(order [C] int32, start [C + 1] int32)``:
        the children of ``p`` are ``order[start[p]:start[p + 1]]``, ascending by slot; ``order`` past
        ``start[C]`` lists the tokens without a (living) parent.
    """
    c = parent.shape[0]
    alive = attr[:, ATTR_CODE] >= 0  # (C,)
    has = (parent >= 0) & alive & alive[parent.clamp_min(0)]
    key = torch.where(has, parent, torch.full_like(parent, c))  # (C,) no parent: after every real one
    order = torch.argsort(key, stable=True)  # (C,) by parent, then by slot
    bounds = torch.arange(c + 1, dtype=key.dtype, device=key.device)
    start = torch.searchsorted(key[order], bounds)  # (C + 1,) first child of each parent
    return order.to(torch.int32), start.to(torch.int32)


def _describe(x: Tensor | None) -> str:
    """``[C, 8] float32``-style summary (shape and dtype, never the values)."""
    if x is None:
        return "None"
    dtype = str(x.dtype).removeprefix("torch.")
    return f"[{', '.join(str(s) for s in x.shape)}] {dtype}"
