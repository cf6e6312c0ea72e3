"""A store directory: the event log, the snapshots, and the recovery that joins them (DESIGN §8).

Layout of ``<path>/``::

    store.json                  format version and creation time; written last at creation (commit mark)
    log.sqlite                  the event log (log.sqlite-wal / -shm beside it while open)
    snapshots/<seq>.safetensors the newest ``keep_snapshots`` snapshots (<seq>: last log record included)
    lock                        held (flock) by the one engine that has the store open

Promise: an operation whose call returned is in the log (durable as the durability mode says), so a
signal whose ``emit`` returned is never lost, whatever kills the process.

Recovery (``Engine.open`` or ``Engine(path=...)`` on an existing store): stray temporary files of an
interrupted snapshot are removed; the newest snapshot that reads back intact (safetensors parses, the
digest matches) is loaded — a damaged one is renamed ``*.damaged`` and the next older one is tried — and
every log record after it is replayed (:mod:`neurograph.persist.ops`). Without any valid snapshot the
log is replayed from its first record, the store's ``init``, as long as it has not been compacted away.

Snapshots are taken by :meth:`Store.snapshot` (``Engine.save()``), by the schedule (every
``snapshot_every`` logged signals and/or every ``snapshot_seconds`` seconds, checked when an operation is
logged: an idle engine takes none) and at ``close()``. After each one, snapshots beyond the newest
``keep_snapshots`` are deleted and the log up to the oldest kept one is compacted away.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError

from neurograph.emit.results import BatchResult, EmitResult
from neurograph.errors import InvalidArgument, OptionMismatch, StoreError
from neurograph.events import EventBus
from neurograph.persist.format import FORMAT_VERSION, Engine, check_format
from neurograph.persist.log import DURABILITY, EventLog
from neurograph.persist.ops import emit_record, replay
from neurograph.persist.snapshot import (
    DamagedSnapshot,
    capture,
    list_snapshots,
    read_snapshot,
    remove_temporaries,
    restore,
    write_snapshot,
)

try:  # POSIX advisory locks; elsewhere a store is not protected against a second engine
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOG_FILE", "SNAPSHOT_DIR", "STORE_FILE", "Store", "StoreConfig", "is_store"]

STORE_FILE = "store.json"
LOG_FILE = "log.sqlite"
SNAPSHOT_DIR = "snapshots"
LOCK_FILE = "lock"
_OWN = {LOCK_FILE, LOG_FILE, f"{LOG_FILE}-wal", f"{LOG_FILE}-shm", f"{LOG_FILE}-journal", SNAPSHOT_DIR}

Publish = Callable[..., Any]


def is_store(path: str | Path) -> bool:
    """Whether ``path`` holds a neurograph store (its ``store.json`` exists)."""
    return (Path(path).expanduser() / STORE_FILE).is_file()


@dataclass(frozen=True)
class StoreConfig:
    """How a store writes.

    Args:
        durability: ``"full"`` (fsync per call), ``"normal"`` or ``"off"``; see
            :mod:`neurograph.persist.log`.
        snapshot_every: take a snapshot after this many logged signals (``None``: never by count).
        snapshot_seconds: take one when this many seconds passed since the last (``None``: never by time).
        keep_snapshots: snapshots kept on disk (older ones and the log before the oldest kept are deleted).
    """

    durability: str = "full"  # fsync every commit: survives power loss
    snapshot_every: int | None = None  # e.g. 100_000 signals; None: only save()/close()
    snapshot_seconds: float | None = None  # e.g. 300.0; None: only save()/close()
    keep_snapshots: int = 3  # a damaged newest snapshot falls back to one of the others

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY:
            raise InvalidArgument("durability", self.durability, f"must be one of {list(DURABILITY)}")
        n = self.snapshot_every
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise InvalidArgument("snapshot_every", n, "must be None or an int >= 1")
        s = self.snapshot_seconds
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0):
            raise InvalidArgument("snapshot_seconds", s, "must be None or a number > 0")
        k = self.keep_snapshots
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidArgument("keep_snapshots", k, "must be an int >= 1")


class Store:
    """An open store: the lock, the event log and the snapshot schedule of one engine.

    Create one with :meth:`attach` (what ``Engine(path=...)`` does), never directly.
    """

    def __init__(self, path: Path, config: StoreConfig, publish: Publish | None = None) -> None:
        self.path = path
        self.config = config
        self._publish = publish
        self.snapshot_dir = path / SNAPSHOT_DIR
        self._lock_fd = _lock(path)
        self.log: EventLog | None = None
        self._finalizer = weakref.finalize(self, _release, self._lock_fd, [None])
        self.seq = 0  # last logged sequence number
        self.snapshot_seq = -1  # sequence number of the newest snapshot written or loaded
        self._since = 0  # signals logged since the last snapshot
        self._last_time = time.monotonic()
        self._unlogged = False  # an operation could not be logged: the next record saves a snapshot first

    @classmethod
    def attach(
        cls,
        engine: Engine,
        path: str | Path,
        config: StoreConfig,
        cdna_given: bool = False,
        options_given: Mapping[str, Any] | None = None,
    ) -> Store:
        """Create a store at ``path`` for a fresh ``engine``, or load an existing one into it.

        The engine's options that shape the state (``engine.options``) travel in every snapshot and every
        change of them is logged, so a loaded engine runs under the store's options.

        Raises:
            StoreError: ``path`` is something else, is in use, is damaged beyond recovery, or was written
                by a newer format version.
            OptionMismatch: an option in ``options_given`` contradicts the store's (nothing changed).
        """
        p = Path(path).expanduser()
        if p.exists() and not p.is_dir():
            raise StoreError(f"store path {str(p)!r} exists and is not a directory")
        p.mkdir(parents=True, exist_ok=True)
        store = cls(p, config, engine.bus.publish)
        try:
            if is_store(p):
                store._load(engine, cdna_given)
                _check_options(engine.options, options_given or {})
            else:
                store._create(engine)
        except BaseException:
            store.close()
            raise
        return store

    def __repr__(self) -> str:
        return (
            f"Store({str(self.path)!r}, durability={self.config.durability!r}, seq={self.seq}, "
            f"snapshot_seq={self.snapshot_seq}, snapshots={len(self.snapshots())}, "
            f"open={self.log is not None})"
        )

    # --- creating and loading -----------------------------------------------------------------------
    def _create(self, engine: Engine) -> None:
        p = self.path
        leftovers = {q.name for q in p.iterdir()} - _OWN
        if leftovers:
            raise StoreError(
                f"store path {str(p)!r} is a directory with other files ({sorted(leftovers)[:5]}) "
                "and no store.json: not a neurograph store"
            )
        if (p / LOG_FILE).exists() or any(self.snapshot_dir.glob("*")):
            self._clear_interrupted_creation()
        self.snapshot_dir.mkdir(exist_ok=True)
        self._open_log()
        tensors, meta = capture(engine, 1)
        self.log.append(1, "init", meta, {k: v.numpy() for k, v in tensors.items()})
        self.seq = 1
        body = {
            "format": "neurograph-store",
            "format_version": FORMAT_VERSION,
            "created": time.time(),
            "durability_at_creation": self.config.durability,
        }
        _write_atomic(p / STORE_FILE, json.dumps(body, indent=2) + "\n", self._fsync)
        self._emit("status", "store.created", {"path": str(p)})

    def _clear_interrupted_creation(self) -> None:
        """Remove what an interrupted creation left (no store.json: no call ever returned on it)."""
        p = self.path
        log = EventLog(p / LOG_FILE, "off")
        try:
            n = len(log)
        finally:
            log.close()
        if n > 1 or list_snapshots(self.snapshot_dir):
            raise StoreError(
                f"store path {str(p)!r} holds a log of {n} records but no store.json: a damaged store; "
                "restore store.json (format_version) by hand or move the directory away"
            )
        for name in (LOG_FILE, f"{LOG_FILE}-wal", f"{LOG_FILE}-shm", f"{LOG_FILE}-journal"):
            (p / name).unlink(missing_ok=True)

    def _load(self, engine: Engine, cdna_given: bool) -> None:
        t0 = time.perf_counter()
        try:
            body = json.loads((self.path / STORE_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / STORE_FILE}: unreadable ({exc})") from exc
        check_format(body.get("format_version") if isinstance(body, dict) else None, str(self.path))
        self._open_log()
        self.snapshot_dir.mkdir(exist_ok=True)
        remove_temporaries(self.snapshot_dir)
        base, damaged = self._load_snapshot(engine)
        bus, engine.bus = engine.bus, EventBus()  # replayed signals are not published again
        try:
            summary = replay(engine, self.log.records(after=base), base)
        finally:
            engine.bus = bus
        self.seq = max(summary.last_seq, base)
        self.snapshot_seq = base if base > 0 else -1
        self._since = summary.signals
        ms = (time.perf_counter() - t0) * 1e3
        if summary.diverged:
            msg = (
                f"{self.path}: replaying the log gave {summary.diverged} result(s) that differ from the "
                "logged ones (an operation that changed the state was not logged, or another device's "
                "floating point decided a near tie)"
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            data = {"path": str(self.path), "diverged": summary.diverged}
            self._emit("logs", "store.replay.diverged", data)
        if cdna_given:
            warnings.warn(
                f"{self.path}: continuing a store: its own CDNA history is in force "
                f"({engine.cdna.name!r} v{engine.cdna.version}), the cdna argument is ignored",
                UserWarning,
                stacklevel=4,
            )
        self._emit(
            "status",
            "store.opened",
            {
                "path": str(self.path),
                "snapshot_seq": base,
                "replayed_records": summary.records,
                "replayed_signals": summary.signals,
                "damaged_snapshots": damaged,
                "ms": ms,
            },
        )

    def _load_snapshot(self, engine: Engine) -> tuple[int, list[str]]:
        """Restore the newest usable snapshot; returns ``(its seq or 0, damaged file names)``."""
        damaged: list[str] = []
        for seq, path in list_snapshots(self.snapshot_dir):
            try:
                tensors, meta = read_snapshot(path)
            except DamagedSnapshot as exc:
                warnings.warn(f"{exc}; falling back to an older snapshot", RuntimeWarning, stacklevel=5)
                damaged.append(path.name)
                with contextlib.suppress(OSError):
                    path.replace(path.with_name(path.name + ".damaged"))
                continue
            nxt = self.log.next_after(seq)
            if nxt is not None and nxt != seq + 1:
                warnings.warn(
                    f"{path}: the log after it is incomplete (next record {nxt}); trying an older snapshot",
                    RuntimeWarning,
                    stacklevel=5,
                )
                continue
            restore(engine, tensors, meta)
            return seq, damaged
        first = self.log.first()
        if first is None or first.op != "init":
            raise StoreError(
                f"{self.path}: no valid snapshot, and the log no longer reaches back to the store's "
                f"creation (damaged: {damaged}): the store cannot be recovered"
            )
        return 0, damaged

    def _open_log(self) -> None:
        self.log = EventLog(self.path / LOG_FILE, self.config.durability)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, self._lock_fd, [self.log])

    @property
    def _fsync(self) -> bool:
        return self.config.durability != "off"

    # --- logging ------------------------------------------------------------------------------------
    def record(
        self,
        engine: Engine,
        op: str,
        payload: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        rows: int = 0,
    ) -> int:
        """Log one operation that has just changed ``engine``; may take a scheduled snapshot.

        Returns:
            The record's sequence number (the snapshot's, when an earlier failure made this a snapshot).

        Raises:
            StoreError: neither the record nor a snapshot could be written (the engine's state in memory
                is ahead of the store until a later call or ``save()`` succeeds).
        """
        if self.log is None:
            raise StoreError(f"{self.path}: the store is closed")
        if self._unlogged:  # the state holds operations the log lacks: only a snapshot restores order
            return self._snapshot_instead(engine, op, "an earlier operation could not be logged")
        try:
            self.log.append(self.seq + 1, op, payload, arrays)
        except (sqlite3.Error, OSError) as exc:
            self._unlogged = True
            return self._snapshot_instead(engine, op, str(exc))
        self.seq += 1
        if not rows and arrays is not None and "token_ids" in arrays:
            rows = len(arrays["token_ids"])  # signals (or tokens) the operation brought in
        self._since += rows
        if self._due():
            try:
                self.snapshot(engine)
            except (StoreError, OSError, SafetensorError) as exc:  # the record is durable: warn only
                warnings.warn(f"{self.path}: scheduled snapshot failed: {exc}", RuntimeWarning, stacklevel=3)
                self._emit("logs", "store.snapshot.failed", {"path": str(self.path), "error": str(exc)})
        return self.seq

    def _snapshot_instead(self, engine: Engine, op: str, cause: str) -> int:
        """Save the state (which holds ``op``) as a snapshot because the log could not take it."""
        try:
            self.snapshot(engine)
        except (StoreError, OSError, SafetensorError, sqlite3.Error) as exc:
            raise StoreError(
                f"{self.path}: {op!r} was applied in memory but could not be logged ({cause}) nor "
                f"snapshotted ({exc}); the next logged call or save() tries again"
            ) from exc
        return self.seq

    def record_emit(
        self,
        engine: Engine,
        types: str | list[str],
        x: np.ndarray,
        priority: np.ndarray,
        kind: np.ndarray,
        meta: Mapping[str, Any] | None,
        result: EmitResult | BatchResult,
        labels: list[str | None] | None = None,
        blobs: list[bytes | None] | None = None,
    ) -> int:
        """Log one ``emit`` (``result`` an EmitResult) or ``emit_batch`` call, after the engine applied it."""
        rows = x.shape[0]
        payload, arrays = emit_record(
            types, x, priority, kind, meta, result, engine.tick - rows, labels=labels, blobs=blobs
        )
        return self.record(engine, "emit", payload, arrays, rows=rows)

    def _due(self) -> bool:
        c = self.config
        if c.snapshot_every is not None and self._since >= c.snapshot_every:
            return True
        return c.snapshot_seconds is not None and time.monotonic() - self._last_time >= c.snapshot_seconds

    # --- snapshots ----------------------------------------------------------------------------------
    def snapshot(self, engine: Engine) -> Path:
        """Write a snapshot of ``engine`` now (atomically), then apply the retention; returns its path."""
        if self.log is None:
            raise StoreError(f"{self.path}: the store is closed")
        t0 = time.perf_counter()
        self._emit("status", "store.snapshot.started", {"path": str(self.path), "seq": self.seq})
        tensors, meta = capture(engine, self.seq)
        path = write_snapshot(self.snapshot_dir, tensors, meta, fsync=self._fsync)
        self.snapshot_seq = self.seq
        self._since = 0
        self._last_time = time.monotonic()
        self._unlogged = False
        self._retain()
        ms = (time.perf_counter() - t0) * 1e3
        self._emit(
            "status",
            "store.snapshot.saved",
            {"path": str(path), "seq": self.seq, "bytes": path.stat().st_size, "ms": ms},
        )
        return path

    def _retain(self) -> None:
        snaps = list_snapshots(self.snapshot_dir)
        keep = snaps[: self.config.keep_snapshots]
        for _, old in snaps[self.config.keep_snapshots :]:
            old.unlink(missing_ok=True)
        if keep:
            try:
                self.log.compact(keep[-1][0])
                self.log.checkpoint()
            except sqlite3.Error as exc:  # the snapshot is safe; compaction waits for the next one
                warnings.warn(f"{self.path}: log compaction failed: {exc}", RuntimeWarning, stacklevel=4)

    def snapshots(self) -> list[tuple[int, Path]]:
        """``(seq, path)`` of the snapshots on disk, newest first."""
        return list_snapshots(self.snapshot_dir) if self.snapshot_dir.is_dir() else []

    def integrity_check(self) -> str:
        """SQLite's integrity check of the event log (``"ok"``)."""
        if self.log is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self.log.integrity_check()

    # --- closing ------------------------------------------------------------------------------------
    def close(self, engine: Engine | None = None) -> None:
        """Snapshot ``engine`` if it changed since the last snapshot (when given), close the log and
        release the lock. Idempotent."""
        try:
            if engine is not None and self.log is not None and self.seq != self.snapshot_seq:
                self.snapshot(engine)
        finally:
            self.log = None
            self._finalizer()

    def _emit(self, channel: str, event_type: str, data: Mapping[str, Any]) -> None:
        if self._publish is not None:
            self._publish(channel, event_type, data)


# --- helpers ----------------------------------------------------------------------------------------
def _lock(path: Path) -> int:
    fd = os.open(str(path / LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreError(
                f"store {str(path)!r} is in use by another engine (close it first: engine.close())"
            ) from exc
    return fd


def _release(fd: int, log: list[EventLog | None]) -> None:
    if log[0] is not None:
        log[0].close()
    with contextlib.suppress(OSError):
        os.close(fd)


def _write_atomic(path: Path, text: str, fsync: bool) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_options(stored: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse an option passed when opening a store that contradicts the store's own."""
    for name, value in given.items():
        if name in stored and stored[name] != value:
            raise OptionMismatch(name, stored[name], value)
