"""Tokens and edges as structs of tensors at a fixed capacity.

Static shapes keep compiled kernels from recompiling: every tensor is allocated at a *capacity* ``C``
(tokens) or ``Ec`` (edges) with an ``alive`` mask, and a host-side count (``count``) tells how many slots
are in use, so appending never needs a device sync. When a store is full its capacity doubles.

Slots and ids: a token lives in a *slot* (its row); its public *id* (``ids[slot]``) is assigned from a
counter and never reused, even after the token dies. Slots are append-only, so slot order is id order
(ties between equally near tokens are broken by slot, which is breaking them by id). ``id_to_slot``
(host, numpy) maps ids back to slots (-1 once a token is gone).

Edges: ``edge_index [2, Ec]`` holds token *slots*. Every learned (non-structural) edge is also listed in
padded adjacency tables on both endpoints, ``adj [C, max_degree]`` (edge slots) and ``nbr`` (the other
endpoint's slot), with ``degree [C]`` their fill; this makes "does edge (a, b) exist", degree limits and
spreading activation plain gathers. Structural ``part_of`` edges (child -> parent field) are not in the
tables: a field may hold any number of children, and ``parent`` already links them.

On the CPU every tensor shares memory with a numpy array (``np(name)``), which the host-side logic uses
for cheap small updates; on CUDA the host gathers what it needs once per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from neurograph.errors import CapacityError
from neurograph.space import DIM

__all__ = ["STRUCTURAL_GROUP", "Column", "EdgeState", "TokenState", "cumcount"]

STRUCTURAL_GROUP = 0x60  # relation group of part_of edges, kept out of the adjacency table


@dataclass(frozen=True)
class Column:
    """One tensor of a store: its name, trailing shape, dtype and fill value of empty slots."""

    name: str
    tail: tuple[int, ...]
    dtype: torch.dtype
    fill: float | int | bool = 0


class _Store:
    """A struct of tensors sharing a leading capacity dimension, growing by doubling."""

    SCHEMA: ClassVar[tuple[Column, ...]] = ()

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise CapacityError(f"capacity must be >= 1, got {capacity}")
        self.device = torch.device(device)
        self.capacity = int(capacity)
        self.count = 0  # slots in use (host-side, no sync)
        self._np: dict[str, np.ndarray] = {}
        for col in self.SCHEMA:
            setattr(self, col.name, self._alloc(col, self.capacity))

    # --- allocation ---------------------------------------------------------------------------------
    def _alloc(self, col: Column, capacity: int) -> torch.Tensor:
        return torch.full((capacity, *col.tail), col.fill, dtype=col.dtype, device=self.device)

    @classmethod
    def bytes_per_slot(cls) -> int:
        """Bytes one slot takes across every tensor of the schema."""
        cached = cls.__dict__.get("_bytes_per_slot")
        if cached is None:
            cached = 0
            for col in cls.SCHEMA:
                n = 1
                for t in col.tail:
                    n *= t
                cached += n * torch.empty((), dtype=col.dtype).element_size()
            cls._bytes_per_slot = cached
        return cached

    def _write(self, name: str, sl: slice, value: Any) -> None:
        """``column[sl] = value`` from host values (numpy view on CPU: no torch dispatch)."""
        if self.device.type == "cpu":
            self.np(name)[sl] = value.numpy() if isinstance(value, torch.Tensor) else value
        else:
            target = getattr(self, name)
            target[sl] = torch.as_tensor(value, dtype=target.dtype).to(self.device)

    def nbytes(self) -> int:
        """Real tensor footprint at the current capacity."""
        return sum(t.numel() * t.element_size() for _, t in self.tensors())

    def grow(self, min_capacity: int) -> int:
        """Double the capacity until it holds ``min_capacity`` slots; returns the new capacity."""
        if min_capacity <= self.capacity:
            return self.capacity
        new = self.capacity
        while new < min_capacity:
            new *= 2
        self._resize(new)
        return new

    def _resize(self, new: int) -> None:
        if new < self.count:
            raise CapacityError(f"cannot shrink to {new} slots: {self.count} in use")
        for col in self.SCHEMA:
            old = getattr(self, col.name)
            fresh = self._alloc(col, new)
            n = min(old.shape[0], new)
            fresh[:n] = old[:n]
            setattr(self, col.name, fresh)
        self.capacity = new
        self._np.clear()

    # --- access -------------------------------------------------------------------------------------
    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` for every column of the schema."""
        for col in self.SCHEMA:
            yield col.name, getattr(self, col.name)

    def np(self, name: str) -> np.ndarray:
        """Numpy view of a CPU column (shares memory: writes land in the tensor)."""
        view = self._np.get(name)
        if view is None:
            tensor = getattr(self, name)
            if tensor.device.type != "cpu":
                raise CapacityError(f"np({name!r}) needs a CPU store; this one is on {tensor.device}")
            view = tensor.numpy()
            self._np[name] = view
        return view

    def gather(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Host copy of ``column[idx]`` (numpy fancy indexing on CPU, one transfer on CUDA)."""
        if self.device.type == "cpu":
            return self.np(name)[idx]
        t = getattr(self, name)
        return t[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)].cpu().numpy()

    def scatter(self, name: str, idx: np.ndarray, values: np.ndarray | float | int) -> None:
        """``column[idx] = values`` from host values."""
        if self.device.type == "cpu":
            self.np(name)[idx] = values
            return
        t = getattr(self, name)
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        t[i] = torch.as_tensor(values, dtype=t.dtype).to(self.device)

    def to(self, device: torch.device | str) -> None:
        """Move every tensor to ``device`` in place."""
        self.device = torch.device(device)
        for name, t in self.tensors():
            setattr(self, name, t.to(self.device))
        self._np.clear()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The used rows of every column (CPU copies)."""
        return {name: t[: self.count].detach().cpu().contiguous() for name, t in self.tensors()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_dict`: capacity grows as needed; missing columns keep their fill."""
        count = next(iter(tensors.values())).shape[0] if tensors else 0
        self.count = 0
        self.grow(max(count, 1))
        for col in self.SCHEMA:
            t = getattr(self, col.name)
            t.fill_(col.fill)
            if col.name in tensors:
                t[:count] = tensors[col.name].to(self.device, col.dtype)
        self.count = count


class TokenState(_Store):
    """Tokens: positions, dynamics and bookkeeping (DESIGN §2).

    Shapes:
        pos, vel ``[C, 8]`` float32; mass, radius, strength, activation ``[C]`` float32;
        kind ``[C]`` int16 (entity type), level ``[C]`` int8 (0 = from signals, >= 1 = fields),
        parent ``[C]`` int64 (slot of the parent field, -1 = none), hits ``[C]`` int32,
        born, seen ``[C]`` int64 (engine tick), ids ``[C]`` int64, alive ``[C]`` bool.
    """

    SCHEMA = (
        Column("pos", (DIM,), torch.float32),
        Column("vel", (DIM,), torch.float32),
        Column("mass", (), torch.float32),
        Column("radius", (), torch.float32),
        Column("strength", (), torch.float32),
        Column("kind", (), torch.int16),
        Column("level", (), torch.int8),
        Column("parent", (), torch.int64, -1),
        Column("activation", (), torch.float32),
        Column("hits", (), torch.int32),
        Column("born", (), torch.int64),
        Column("seen", (), torch.int64),
        Column("ids", (), torch.int64, -1),
        Column("alive", (), torch.bool, False),
    )

    pos: torch.Tensor
    vel: torch.Tensor
    mass: torch.Tensor
    radius: torch.Tensor
    strength: torch.Tensor
    kind: torch.Tensor
    level: torch.Tensor
    parent: torch.Tensor
    activation: torch.Tensor
    hits: torch.Tensor
    born: torch.Tensor
    seen: torch.Tensor
    ids: torch.Tensor
    alive: torch.Tensor

    def __init__(self, capacity: int = 1024, device: torch.device | str = "cpu") -> None:
        super().__init__(capacity, device)
        self.next_id = 0  # the next public id (never reused)
        self.n_alive = 0  # alive tokens (host-side)
        self.id_to_slot = np.full(0, -1, dtype=np.int64)  # host map id -> slot (-1: gone)

    def append(self, n: int, tick: int, **values: Any) -> np.ndarray:
        """Append ``n`` tokens; returns their slots ``[n]`` (host int64).

        ``values`` maps column names to tensors/arrays of ``n`` rows (or scalars); ``ids``, ``alive``,
        ``born`` and ``seen`` are set here. The caller checks quotas first.
        """
        start = self.count
        stop = start + n
        self.grow(stop)
        slots = np.arange(start, stop, dtype=np.int64)
        new_ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        sl = slice(start, stop)
        for name, value in values.items():
            self._write(name, sl, value)
        self._write("ids", sl, new_ids)
        self._write("alive", sl, True)
        self._write("born", sl, tick)
        self._write("seen", sl, tick)
        if self.id_to_slot.shape[0] < self.next_id + n:
            grown = np.full(max(2 * self.id_to_slot.shape[0], self.next_id + n, 1024), -1, np.int64)
            grown[: self.id_to_slot.shape[0]] = self.id_to_slot
            self.id_to_slot = grown
        self.id_to_slot[self.next_id : self.next_id + n] = slots
        self.next_id += n
        self.count = stop
        self.n_alive += n
        return slots

    def kill(self, slots: np.ndarray) -> None:
        """Mark tokens dead (their ids are never reused)."""
        slots = np.unique(np.asarray(slots, dtype=np.int64))
        if slots.size == 0:
            return
        idx = torch.from_numpy(slots).to(self.device)
        ids = self.ids[idx].cpu().numpy()
        was = self.alive[idx]
        self.n_alive -= int(was.sum())
        self.alive[idx] = False
        self.id_to_slot[ids] = -1

    def slots_of(self, ids: Any) -> np.ndarray:
        """Slots of public ids (host int64, -1 for unknown or dead ids)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        ok = (ids >= 0) & (ids < self.next_id)
        out[ok] = self.id_to_slot[ids[ok]]
        return out

    def load_state_dict(self, tensors: dict[str, torch.Tensor], next_id: int | None = None) -> None:
        """Restore tokens (see :meth:`_Store.load_state_dict`) and rebuild the host id map."""
        super().load_state_dict(tensors)
        ids = self.ids[: self.count].cpu().numpy()
        alive = self.alive[: self.count].cpu().numpy()
        self.next_id = int(next_id if next_id is not None else (ids.max() + 1 if ids.size else 0))
        self.id_to_slot = np.full(max(self.next_id, 1024), -1, dtype=np.int64)
        self.id_to_slot[ids[alive]] = np.nonzero(alive)[0]
        self.n_alive = int(alive.sum())


class EdgeState(_Store):
    """Edges between token slots, plus the adjacency table of learned edges (DESIGN §2).

    Shapes:
        edge_index ``[2, Ec]`` int64 (source and target *slots*, PyG convention; use
        :attr:`edge_index`), kind ``[Ec]`` int16, weight, rest, confidence ``[Ec]`` float32,
        mutability ``[Ec]`` int8 (0 immutable, 1 learnable, 2 hypothesis), evidence ``[Ec]`` int32,
        updated ``[Ec]`` int64 (tick of the last reinforcement), alive ``[Ec]`` bool;
        adj ``[C, max_degree]`` int32 edge slots (-1 empty), nbr ``[C, max_degree]`` int32 the other
        endpoint of each, degree ``[C]`` int32.
    """

    SCHEMA = (
        Column("src", (), torch.int64, -1),
        Column("dst", (), torch.int64, -1),
        Column("kind", (), torch.int16),
        Column("weight", (), torch.float32),
        Column("rest", (), torch.float32),
        Column("confidence", (), torch.float32),
        Column("mutability", (), torch.int8),
        Column("evidence", (), torch.int32),
        Column("updated", (), torch.int64),
        Column("alive", (), torch.bool, False),
    )

    src: torch.Tensor
    dst: torch.Tensor
    kind: torch.Tensor
    weight: torch.Tensor
    rest: torch.Tensor
    confidence: torch.Tensor
    mutability: torch.Tensor
    evidence: torch.Tensor
    updated: torch.Tensor
    alive: torch.Tensor

    def __init__(
        self, capacity: int = 4096, node_capacity: int = 1024, max_degree: int = 32, device: Any = "cpu"
    ) -> None:
        super().__init__(capacity, device)
        self.n_alive = 0
        self._alloc_nodes(node_capacity, max_degree)

    # --- the adjacency table ------------------------------------------------------------------------
    _NODE_TABLES = ("adj", "nbr", "degree")

    def _alloc_nodes(self, rows: int, width: int) -> None:
        self.adj = torch.full((rows, width), -1, dtype=torch.int32, device=self.device)  # edge slots
        self.nbr = torch.full((rows, width), -1, dtype=torch.int32, device=self.device)  # other endpoints
        self.degree = torch.zeros(rows, dtype=torch.int32, device=self.device)
        for name in self._NODE_TABLES:
            self._np.pop(name, None)

    @property
    def edge_index(self) -> torch.Tensor:
        """``[2, count]`` source and target slots of the used edge rows (dead rows included)."""
        return torch.stack([self.src[: self.count], self.dst[: self.count]])

    @property
    def max_degree(self) -> int:
        return self.adj.shape[1]

    def nbytes(self) -> int:
        return super().nbytes() + (2 * self.adj.numel() + self.degree.numel()) * 4

    @staticmethod
    def node_bytes(rows: int, width: int) -> int:
        """Bytes of the adjacency tables for ``rows`` tokens of degree bound ``width``."""
        return rows * (2 * width + 1) * 4

    def ensure_nodes(self, node_capacity: int, max_degree: int | None = None) -> None:
        """Grow the adjacency tables to ``node_capacity`` rows and (optionally) a wider degree bound."""
        rows, width = self.adj.shape
        width_new = max(width, max_degree or width)
        rows_new = rows
        while rows_new < node_capacity:
            rows_new *= 2
        if (rows_new, width_new) == (rows, width):
            return
        old = (self.adj, self.nbr, self.degree)
        self._alloc_nodes(rows_new, width_new)
        self.adj[:rows, :width] = old[0]
        self.nbr[:rows, :width] = old[1]
        self.degree[:rows] = old[2]

    def np(self, name: str) -> np.ndarray:
        if name in self._NODE_TABLES:
            view = self._np.get(name)
            if view is None:
                view = getattr(self, name).numpy()
                self._np[name] = view
            return view
        return super().np(name)

    def to(self, device: torch.device | str) -> None:
        super().to(device)
        for name in self._NODE_TABLES:
            setattr(self, name, getattr(self, name).to(self.device))

    def load_state_dict(self, tensors: dict[str, torch.Tensor], node_capacity: int = 1024) -> None:
        """Restore edges and rebuild the adjacency tables from the alive learned edges."""
        super().load_state_dict(tensors)
        self._alloc_nodes(max(node_capacity, 1), self.adj.shape[1])
        alive = self.alive[: self.count].cpu().numpy()
        self.n_alive = int(alive.sum())
        kind = self.kind[: self.count].cpu().numpy()
        learned = np.nonzero(alive & ((kind.astype(np.int64) & 0xF0) != STRUCTURAL_GROUP))[0]
        if learned.size:
            src = self.src[: self.count].cpu().numpy()[learned]
            dst = self.dst[: self.count].cpu().numpy()[learned]
            self._link(learned, src, dst)

    # --- edits --------------------------------------------------------------------------------------
    def append(self, src: np.ndarray, dst: np.ndarray, tick: int, **values: Any) -> np.ndarray:
        """Append edges (the caller checked quotas, degrees and duplicates); returns their slots.

        Raises:
            CapacityError: a learned edge would overflow an adjacency row (nothing is written).
        """
        n = len(src)
        kind = np.broadcast_to(np.asarray(values.get("kind", 0), dtype=np.int64), (n,))
        learned = (kind & 0xF0) != STRUCTURAL_GROUP
        if learned.any():
            nodes = np.concatenate([np.asarray(src)[learned], np.asarray(dst)[learned]]).astype(np.int64)
            self.ensure_nodes(int(nodes.max()) + 1)
            if (self.gather("degree", nodes) + cumcount(nodes) >= self.max_degree).any():
                raise CapacityError("adjacency row overflow: the caller must enforce max_degree")
        start = self.count
        stop = start + n
        self.grow(stop)
        slots = np.arange(start, stop, dtype=np.int64)
        sl = slice(start, stop)
        self._write("src", sl, src)
        self._write("dst", sl, dst)
        for name, value in values.items():
            self._write(name, sl, value)
        self._write("alive", sl, True)
        self._write("updated", sl, tick)
        self.count = stop
        self.n_alive += n
        if learned.any():
            self._link(slots[learned], np.asarray(src)[learned], np.asarray(dst)[learned])
        return slots

    def _link(self, edges: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
        """Enter learned edges in the adjacency rows of both endpoints."""
        nodes = np.concatenate([src, dst]).astype(np.int64)
        others = np.concatenate([dst, src]).astype(np.int32)
        eslots = np.concatenate([edges, edges]).astype(np.int32)
        self.ensure_nodes(int(nodes.max()) + 1)
        col = self.gather("degree", nodes) + cumcount(nodes)
        if self.device.type == "cpu":
            self.np("adj")[nodes, col] = eslots
            self.np("nbr")[nodes, col] = others
            np.add.at(self.np("degree"), nodes, 1)
        else:
            nodes_t = torch.from_numpy(nodes).to(self.device)
            col_t = torch.from_numpy(col).to(self.device)
            self.adj[nodes_t, col_t] = torch.from_numpy(eslots).to(self.device)
            self.nbr[nodes_t, col_t] = torch.from_numpy(others).to(self.device)
            self.degree.index_add_(0, nodes_t, torch.ones_like(nodes_t, dtype=torch.int32))

    def remove(self, edges: np.ndarray) -> None:
        """Kill edges and take them out of the adjacency rows (rows stay packed, order kept)."""
        edges = np.unique(np.asarray(edges, dtype=np.int64))
        if edges.size == 0:
            return
        edges = edges[self.gather("alive", edges)]
        if edges.size == 0:
            return
        e_t = torch.from_numpy(edges).to(self.device)
        self.alive[e_t] = False
        self.n_alive -= int(edges.size)
        nodes = torch.unique(torch.cat([self.src[e_t], self.dst[e_t]]))
        rows = self.adj[nodes]  # (r, D)
        keep = (rows >= 0) & self.alive[rows.clamp_min(0).long()]
        # pack kept entries to the front, keeping their order (stable sort on "not kept")
        order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # (r, D)
        empty = torch.full_like(rows, -1)
        self.adj[nodes] = torch.gather(torch.where(keep, rows, empty), 1, order)
        self.nbr[nodes] = torch.gather(torch.where(keep, self.nbr[nodes], empty), 1, order)
        self.degree[nodes] = keep.sum(1).to(torch.int32)

    def find(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Slot of the learned edge between token slots ``a[i]`` and ``b[i]`` (either direction), or -1.

        Shapes:
            a, b ``[P]`` -> ``[P]`` int64.
        """
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        if a.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.device.type == "cpu":
            hit = self.np("nbr")[a] == b[:, None]  # (P, D); empty entries are -1, never a slot
            found = hit.any(1)
            out = np.full(a.shape, -1, dtype=np.int64)
            if found.any():
                af = a[found]
                out[found] = self.np("adj")[af, hit[found].argmax(1)]
            return out
        a_t = torch.from_numpy(a).to(self.device)
        hit_t = self.nbr[a_t] == torch.from_numpy(b).to(self.device)[:, None].int()
        col = hit_t.int().argmax(1)
        slot = torch.where(hit_t.any(1), self.adj[a_t, col].long(), -1)
        return slot.cpu().numpy()


def cumcount(keys: np.ndarray) -> np.ndarray:
    """Occurrence number of each element among equal earlier elements: ``[5, 3, 5, 5] -> [0, 0, 1, 2]``."""
    keys = np.asarray(keys)
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(keys.size), 0))
    ranks = np.empty(keys.size, dtype=np.int64)
    ranks[order] = np.arange(keys.size) - group_start
    return ranks
