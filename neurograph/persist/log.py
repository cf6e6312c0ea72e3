"""The event log: every state-changing operation of an engine, in order, in SQLite (WAL journal mode).

One row per operation, written (and committed) before the engine call that made it returns:

``seq``
    sequence number (``INTEGER PRIMARY KEY``), assigned by the store, increasing, never reused.
``op``
    the operation's name: ``emit`` (one ``emit`` *or* one ``emit_batch``: a batch is one record, so its
    boundaries survive and it is replayed as a batch), ``add_tokens``, ``cdna.update``, ``cdna.set``,
    ``cdna.rollback``, ``init`` (the store's first record), and what other modules register (``step``,
    ``learn``, ``hierarchy``); see :mod:`neurograph.persist.ops`.
``time``
    wall-clock time of the record (unix seconds).
``payload``
    JSON text: the small, structured arguments (event type(s), metadata, CDNA changes, the tick before).
``arrays`` and ``data``
    the operation's named arrays: ``arrays`` is JSON ``[[name, dtype, shape], ...]`` (numpy dtype strings
    with their byte order, e.g. ``"<f4"``), ``data`` their raw bytes one after the other (no pickle). For
    ``emit``: ``vectors [B, 8]`` float32 (after clamping into the CDNA box), ``priorities [B]`` uint8,
    ``kinds [B]`` int16, ``token_ids [B]`` int64 (the resulting token of each row), ``is_novel [B]`` bool.

Durability (SQLite's ``synchronous`` setting; a commit is one record):

``full`` (default when a path is given)
    every commit is fsynced before the call returns: an emit that returned survives a process kill *and*
    an operating-system crash or power loss (on a disk that honours flushes). One fsync per call: batch
    your signals to amortise it.
``normal``
    commits reach the operating system before the call returns, the WAL is fsynced only at checkpoints:
    an emit that returned survives a process kill (SIGKILL, OOM); a power loss may drop the last
    records, never corrupts the log.
``off``
    no fsync at all (snapshots are not fsynced either): survives a process kill like ``normal``; after an
    operating-system crash or power loss recent records may be lost and the files may be damaged.

Reading: :meth:`EventLog.records` streams records after a sequence number; :meth:`EventLog.signals_frame`
gives one row per logged signal as a DataFrame.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurograph.errors import InvalidArgument, StoreError
from neurograph.persist.format import FORMAT_VERSION, check_format, jsonable
from neurograph.space import AXES

__all__ = ["DURABILITY", "EventLog", "Record", "pack", "unpack"]

#: durability mode -> SQLite ``synchronous`` setting
DURABILITY: dict[str, str] = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY,
    op TEXT NOT NULL,
    time REAL NOT NULL,
    payload TEXT NOT NULL,
    arrays TEXT,
    data BLOB
);
"""

_SELECT = "SELECT seq, op, time, payload, arrays, data FROM ops"


@dataclass(frozen=True)
class Record:
    """One logged operation (see the module docstring for the fields)."""

    seq: int
    op: str
    time: float
    payload: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.arrays.items()}
        return f"Record(seq={self.seq}, op={self.op!r}, time={self.time:.3f}, arrays={shapes})"


class EventLog:
    """An append-only log of operations in one SQLite file.

    Args:
        path: the SQLite file (created if missing).
        durability: ``"full"``, ``"normal"`` or ``"off"`` (see the module docstring).

    Raises:
        StoreError: the file is not a readable log, or was written by a newer format version.
    """

    def __init__(self, path: str | Path, durability: str = "full") -> None:
        if durability not in DURABILITY:
            raise InvalidArgument("durability", durability, f"must be one of {list(DURABILITY)}")
        self.path = Path(path)
        self.durability = durability
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT INTO meta VALUES ('format_version', ?), ('created', ?)",
                    (str(FORMAT_VERSION), repr(time.time())),
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a readable neurograph event log ({exc})") from exc
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: SQLite refused WAL journal mode (got {mode!r})")
        self.format_version = check_format(row[0] if row is not None else FORMAT_VERSION, str(self.path))

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r}, durability={self.durability!r})"

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM ops").fetchone()[0])

    # --- writing ------------------------------------------------------------------------------------
    def append(
        self,
        seq: int,
        op: str,
        payload: Mapping[str, Any] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Append and commit one record (durable as the durability mode promises when this returns).

        Args:
            seq: its sequence number (greater than every logged one).
            op: operation name.
            payload: JSON-able arguments (numpy scalars and arrays are converted).
            arrays: named arrays, stored as one blob of their raw bytes (C order) with a JSON spec of
                names, dtypes, shapes and offsets (see :func:`pack`).
        """
        text = json.dumps(payload or {}, separators=(",", ":"), default=jsonable)
        spec, blob = pack(arrays) if arrays else (None, None)
        self._conn.execute(
            "INSERT INTO ops (seq, op, time, payload, arrays, data) VALUES (?, ?, ?, ?, ?, ?)",
            (int(seq), op, time.time(), text, spec, blob),
        )

    def compact(self, upto: int) -> int:
        """Delete the records with ``seq <= upto`` (they are in a kept snapshot); returns how many."""
        cur = self._conn.execute("DELETE FROM ops WHERE seq <= ?", (int(upto),))
        return cur.rowcount

    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (keeps the WAL small after a compaction)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reading ------------------------------------------------------------------------------------
    def bounds(self) -> tuple[int | None, int | None]:
        """``(first seq, last seq)`` of the logged records (``None`` when the log is empty)."""
        lo, hi = self._conn.execute("SELECT MIN(seq), MAX(seq) FROM ops").fetchone()
        return lo, hi

    def next_after(self, seq: int) -> int | None:
        """The smallest logged sequence number above ``seq`` (``None``: nothing after it)."""
        return self._conn.execute("SELECT MIN(seq) FROM ops WHERE seq > ?", (int(seq),)).fetchone()[0]

    def first(self) -> Record | None:
        """The oldest record still in the log."""
        return next(self._query(f"{_SELECT} ORDER BY seq LIMIT 1"), None)

    def records(self, after: int = 0) -> Iterator[Record]:
        """Stream the records with ``seq > after`` in order."""
        return self._query(f"{_SELECT} WHERE seq > ? ORDER BY seq", after)

    def _query(self, sql: str, *args: Any) -> Iterator[Record]:
        for seq, op, when, text, spec, blob in self._conn.execute(sql, args):
            arrays = unpack(spec, blob, seq) if spec else {}
            yield Record(int(seq), op, float(when), json.loads(text), arrays)

    def signals_frame(self) -> pd.DataFrame:
        """One row per logged signal (``emit`` and ``add_tokens`` rows): seq, row (within its batch),
        time, op, event_type, token_id, is_novel, priority, kind, one column per axis."""
        parts = []
        for rec in self.records():
            if "vectors" not in rec.arrays:
                continue
            a = rec.arrays
            b = a["vectors"].shape[0]
            types = rec.payload.get("event_types") or [rec.payload.get("event_type", "")] * b
            part = pd.DataFrame(
                {
                    "seq": rec.seq,
                    "row": np.arange(b),
                    "time": rec.time,
                    "op": rec.op,
                    "event_type": types,
                    "token_id": a["token_ids"],
                    "is_novel": a.get("is_novel", np.ones(b, bool)),
                    "priority": a["priorities"].astype(np.int64),
                    "kind": a["kinds"],
                }
            )
            part[list(AXES)] = a["vectors"]
            parts.append(part)
        if not parts:
            cols = ["seq", "row", "time", "op", "event_type", "token_id", "is_novel", "priority", "kind"]
            return pd.DataFrame(columns=[*cols, *AXES])
        return pd.concat(parts, ignore_index=True)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` for a sound file)."""
        return "\n".join(row[0] for row in self._conn.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()


def pack(arrays: Mapping[str, np.ndarray]) -> tuple[str, bytes]:
    """``(spec JSON, raw bytes)`` of named arrays (the ``arrays`` and ``data`` columns)."""
    spec, parts = [], []
    for name, value in arrays.items():
        a = np.ascontiguousarray(value)
        if a.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object: only numeric and bool arrays are logged")
        spec.append([name, a.dtype.str, list(a.shape)])
        parts.append(a.tobytes())
    return json.dumps(spec, separators=(",", ":")), b"".join(parts)


def unpack(spec: str, blob: bytes | None, seq: int = -1) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack` (writable copies).

    Raises:
        StoreError: the bytes do not match the spec (a damaged record).
    """
    out, offset, blob = {}, 0, blob or b""
    for name, dtype_str, shape in json.loads(spec):
        dtype = np.dtype(dtype_str)
        count = int(np.prod(shape, dtype=np.int64))
        size = count * dtype.itemsize
        if offset + size > len(blob):
            raise StoreError(f"log record {seq}: array {name!r} runs past the end of its data")
        out[name] = np.frombuffer(blob, dtype, count, offset).reshape(shape).copy()
        offset += size
    if offset != len(blob):
        raise StoreError(f"log record {seq}: {len(blob) - offset} bytes of data left after its arrays")
    return out
