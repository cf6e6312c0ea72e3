"""The engine's persistence: ``Engine(path=...)``, ``Engine.open``, ``save``, ``close`` (DESIGN §8).

:class:`StoreOps` is part of :class:`~neurograph.engine.Engine` (a mixin kept in its own module); the log,
the snapshots and the replay live in :mod:`neurograph.persist`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neurograph.errors import StoreError
from neurograph.persist import Store, is_store

if TYPE_CHECKING:
    from neurograph.engine import Engine

__all__ = ["StoreOps"]


class StoreOps:
    """Store handling of an engine: open, save, close, and the hooks that log every state change."""

    @classmethod
    def open(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu", **kwargs: Any) -> Engine:
        """Open the store at ``path``: its newest valid snapshot, then the log after it (DESIGN §8).

        A damaged newest snapshot is skipped (with a warning) for the one before. The store's own CDNA
        history, seed and counters are in force; ``device`` may differ from the one that wrote it.

        Args:
            path: a store directory written by ``Engine(path=...)``.
            device: where the tensors go.
            **kwargs: keyword arguments of the constructor (``durability``, ``snapshot_every``, ``bus``...).

        Raises:
            StoreError: no store at ``path``, in use by another engine, written by a newer format version,
                or damaged beyond recovery.
        """
        if not is_store(path):
            why = "the path does not exist" if not os.path.exists(path) else "it holds no store.json"
            raise StoreError(f"no neurograph store at {os.fspath(path)!r}: {why}")
        return cls(device, path=path, **kwargs)

    @property
    def store(self) -> Store | None:
        """The open store (log, snapshots), or ``None`` for an engine in memory only."""
        return self._store

    def save(self) -> Path:
        """Write a snapshot of the whole state now (atomically) and return its path.

        Raises:
            StoreError: the engine has no store.
        """
        if self._store is None:
            raise StoreError("this engine has no store: create it with Engine(path=...) or Engine.open(path)")
        return self._store.snapshot(self)

    def close(self) -> None:
        """Snapshot what changed since the last snapshot, close the log and release the store's lock.

        The engine stays usable in memory, no longer persistent. Idempotent; ``with Engine(path=p) as eng:``
        closes on leaving the block.
        """
        if self._store is not None:
            store, self._store = self._store, None
            store.close(self)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(
        self, op: str, payload: Mapping[str, Any] | None = None, arrays: Any = None, rows: int = 0
    ) -> None:
        """Log an operation that just changed the state (no-op without a store); see ``persist/ops.py``."""
        if self._store is not None:
            self._store.record(self, op, payload, arrays, rows)

    def _log_emit(
        self, types: Any, x: np.ndarray, pri: np.ndarray, kind: np.ndarray, meta: Any, result: Any
    ) -> None:
        """Log an accepted ``emit`` / ``emit_batch`` (durable when the call returns)."""
        if self._store is not None:
            self._store.record_emit(self, types, x, pri, kind, meta, result)
