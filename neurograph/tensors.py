"""Structs of tensors at a fixed capacity that double when full (the storage scheme of DESIGN §2).

A store is a set of named columns sharing a leading *capacity* dimension. A host-side ``count`` tells how
many slots are in use, so appending never needs a device sync; static shapes keep compiled kernels from
recompiling while a store fills. On the CPU every column shares memory with a numpy array (``np(name)``),
which host-side logic uses for cheap small updates; ``gather`` / ``scatter`` move host values in and out
on any device. The token and edge schemas live in :mod:`neurograph.state`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from neurograph.errors import CapacityError

__all__ = ["Column", "TensorStore", "cumcount"]


@dataclass(frozen=True)
class Column:
    """One tensor of a store: its name, trailing shape, dtype and fill value of empty slots."""

    name: str
    tail: tuple[int, ...]
    dtype: torch.dtype
    fill: float | int | bool = 0


class TensorStore:
    """A struct of tensors sharing a leading capacity dimension, growing by doubling."""

    SCHEMA: ClassVar[tuple[Column, ...]] = ()

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise CapacityError(f"capacity must be >= 1, got {capacity}")
        self.device = torch.device(device)
        self._cpu = self.device.type == "cpu"
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
        if self._cpu:
            view = self._np.get(name)
            if view is None:
                view = self.np(name)
            view[sl] = value.numpy() if isinstance(value, torch.Tensor) else value
        else:
            target = getattr(self, name)
            target[sl] = torch.as_tensor(value, dtype=target.dtype).to(self.device)

    def append_rows(self, n: int, columns: dict[str, Any]) -> int:
        """Write ``n`` new rows from device tensors or scalars (no host values, no sync) and return the
        first new slot. The caller sets every column and any host-side counter of a subclass."""
        start = self.count
        self.grow(start + n)
        for name, value in columns.items():
            target = getattr(self, name)[start : start + n]
            if isinstance(value, torch.Tensor):
                target.copy_(value)
            else:
                target.fill_(value)
        self.count = start + n
        return start

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
        if self._cpu:
            return self.np(name)[idx]
        t = getattr(self, name)
        return t[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)].cpu().numpy()

    def scatter(self, name: str, idx: np.ndarray, values: np.ndarray | float | int) -> None:
        """``column[idx] = values`` from host values."""
        if self._cpu:
            self.np(name)[idx] = values
            return
        t = getattr(self, name)
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        t[i] = torch.as_tensor(values, dtype=t.dtype).to(self.device)

    def to(self, device: torch.device | str) -> None:
        """Move every tensor to ``device`` in place."""
        self.device = torch.device(device)
        self._cpu = self.device.type == "cpu"
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


def cumcount(keys: np.ndarray) -> np.ndarray:
    """Occurrence number of each element among equal earlier elements: ``[5, 3, 5, 5] -> [0, 0, 1, 2]``."""
    keys = np.asarray(keys)
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    if keys.size <= 64:  # small inputs (single signals): a dict is cheaper than sorting
        seen: dict[int, int] = {}
        out = []
        for key in keys.tolist():
            c = seen.get(key, 0)
            out.append(c)
            seen[key] = c + 1
        return np.array(out, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(keys.size), 0))
    ranks = np.empty(keys.size, dtype=np.int64)
    ranks[order] = np.arange(keys.size) - group_start
    return ranks
