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

from typing import Any

import numpy as np
import torch

from neurograph.errors import CapacityError
from neurograph.kinds import STRUCTURAL_GROUP
from neurograph.space import DIM
from neurograph.tensors import Column, TensorStore, cumcount

__all__ = ["Column", "EdgeState", "TokenState", "cumcount", "planned_bytes"]


class TokenState(TensorStore):
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
        self.count = stop
        self.map_new(start, n)
        return slots

    def map_new(self, start: int, n: int) -> None:
        """Host bookkeeping of ``n`` tokens just written at slots ``start..start+n`` with the ids
        ``next_id..next_id+n``: the id map, the next id, the alive count (every append path calls it)."""
        if self.id_to_slot.shape[0] < self.next_id + n:
            grown = np.full(max(2 * self.id_to_slot.shape[0], self.next_id + n, 1024), -1, np.int64)
            grown[: self.id_to_slot.shape[0]] = self.id_to_slot
            self.id_to_slot = grown
        self.id_to_slot[self.next_id : self.next_id + n] = np.arange(start, start + n, dtype=np.int64)
        self.next_id += n
        self.n_alive += n

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
        """Restore tokens (see :meth:`TensorStore.load_state_dict`) and rebuild the host id map."""
        super().load_state_dict(tensors)
        ids = self.ids[: self.count].cpu().numpy()
        alive = self.alive[: self.count].cpu().numpy()
        self.next_id = int(next_id if next_id is not None else (ids.max() + 1 if ids.size else 0))
        self.id_to_slot = np.full(max(self.next_id, 1024), -1, dtype=np.int64)
        self.id_to_slot[ids[alive]] = np.nonzero(alive)[0]
        self.n_alive = int(alive.sum())


class EdgeState(TensorStore):
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
            l_src, l_dst = np.asarray(src)[learned], np.asarray(dst)[learned]
            nodes = np.concatenate([l_src, l_dst]).astype(np.int64)
            self.ensure_nodes(int(nodes.max()) + 1)
            col = self.gather("degree", nodes) + cumcount(nodes)  # where each edge enters a node's row
            if (col >= self.max_degree).any():
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
            self._link(slots[learned], l_src, l_dst, col)
        return slots

    def _link(
        self, edges: np.ndarray, src: np.ndarray, dst: np.ndarray, col: np.ndarray | None = None
    ) -> None:
        """Enter learned edges in the adjacency rows of both endpoints (``col``: precomputed columns)."""
        nodes = np.concatenate([src, dst]).astype(np.int64)
        others = np.concatenate([dst, src]).astype(np.int32)
        eslots = np.concatenate([edges, edges]).astype(np.int32)
        self.ensure_nodes(int(nodes.max()) + 1)
        if col is None:
            col = self.gather("degree", nodes) + cumcount(nodes)
        if self._cpu:
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
        if self._cpu:
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


def planned_bytes(
    tokens: TokenState, edges: EdgeState, n_tok: int, n_edge: int, degree: int
) -> tuple[int, int]:
    """``(footprint after growth, newly allocated bytes)`` for ``n_tok`` more tokens and ``n_edge`` edges."""
    cap = _doubled(tokens.capacity, tokens.count + n_tok)
    ecap = _doubled(edges.capacity, edges.count + n_edge)
    rows = max(edges.adj.shape[0], cap)
    width = max(edges.max_degree, degree)
    adj_bytes = EdgeState.node_bytes(rows, width)
    after = cap * TokenState.bytes_per_slot() + ecap * EdgeState.bytes_per_slot() + adj_bytes
    alloc = 0
    if cap > tokens.capacity:
        alloc += cap * TokenState.bytes_per_slot()
    if ecap > edges.capacity:
        alloc += ecap * EdgeState.bytes_per_slot()
    if (rows, width) != tuple(edges.adj.shape):
        alloc += adj_bytes
    return after, alloc


def _doubled(capacity: int, need: int) -> int:
    while capacity < need:
        capacity *= 2
    return capacity
