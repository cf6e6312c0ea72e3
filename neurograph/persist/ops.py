"""Logged operations: what each one writes, and the dispatch table that replays them.

The event log is a generic list of operations: a name (``op``), a JSON payload, named arrays and a
sequence number (:mod:`neurograph.persist.log`). Recovery loads a snapshot and hands every later record to
the replay function registered for its name, in order. Replay calls the engine's own methods, so it
re-runs the operation rather than copying its effects: emit semantics are deterministic, so the same
token ids come back (each replayed ``emit`` compares them with the logged ones and reports any
difference). A batch is one record and is replayed as one batch (batch and sequential emits differ in
when reinforcement moves land). Operations whose result depends on the device's floating point or on
random numbers (the dynamics) are re-run, not replayed bit for bit.

While a store replays, the engine has no store attached, so the methods called here do not log again.

Adding an operation (e.g. ``step`` of the dynamics):

1. at the end of the engine method, once the state has changed and nothing can fail any more, call
   ``self._record("step", {"n": n})`` (payload: JSON-able values; large data as ``arrays={name: ndarray}``;
   ``rows=`` counts signals for the ``snapshot_every`` schedule);
2. register its replay here, beside every other replay::

       @register_op("step")
       def _replay_step(engine: Engine, rec: Record) -> int:
           engine.step(rec.payload["n"])
           return 0  # number of results that differ from the logged ones (none are logged here)

A store whose log holds an operation no replay function is registered for is refused with a
:class:`~neurograph.errors.StoreError` naming it (an older neurograph, or an extension not imported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.emit.results import BatchResult, EmitResult
from neurograph.errors import StoreError
from neurograph.memory import decode_payload
from neurograph.persist.format import Engine
from neurograph.persist.log import Record
from neurograph.persist.snapshot import restore

__all__ = ["OPS", "ReplaySummary", "emit_record", "register_op", "replay"]

ReplayFn = Callable[["Engine", Record], int]

#: op name -> replay function ``fn(engine, record) -> number of results that differ from the log``
OPS: dict[str, ReplayFn] = {}


def register_op(name: str) -> Callable[[ReplayFn], ReplayFn]:
    """Decorator registering the replay function of operation ``name`` (see the module docstring)."""

    def deco(fn: ReplayFn) -> ReplayFn:
        OPS[name] = fn
        return fn

    return deco


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did: records and signals replayed, results that differed, the last sequence number."""

    records: int
    signals: int
    diverged: int
    last_seq: int


def replay(engine: Engine, records: Iterable[Record], after: int) -> ReplaySummary:
    """Re-run ``records`` (sequence numbers ``after + 1, after + 2, ...``) on ``engine``.

    Raises:
        StoreError: a gap in the sequence numbers, or an operation without a replay function.
    """
    n = signals = diverged = 0
    last = after
    for rec in records:
        if rec.seq != last + 1:
            raise StoreError(f"the event log has a gap: record {last + 1} is missing (next is {rec.seq})")
        fn = OPS.get(rec.op)
        if fn is None:
            raise StoreError(
                f"the event log holds operation {rec.op!r} (seq {rec.seq}) that this neurograph cannot "
                f"replay; known operations: {sorted(OPS)}"
            )
        diverged += fn(engine, rec)
        ids = rec.arrays.get("token_ids")
        signals += 0 if ids is None else int(ids.shape[0])
        n += 1
        last = rec.seq
    return ReplaySummary(n, signals, diverged, last)


# --- emit / emit_batch ------------------------------------------------------------------------------
def emit_record(
    types: str | list[str],
    x: np.ndarray,
    priority: np.ndarray,
    kind: np.ndarray,
    meta: Mapping[str, Any] | None,
    result: EmitResult | BatchResult,
    tick: int,
    *,
    labels: list[str | None] | None = None,
    blobs: list[bytes | None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Payload and arrays of one ``emit`` (an :class:`EmitResult`) or ``emit_batch`` call.

    Labels travel in the payload (one string when every row has the same); payloads, already encoded
    (:func:`~neurograph.memory.encode_payload`), as one byte array and their lengths (-1: none).

    Shapes:
        x ``[B, 8]`` float32 (clamped), priority ``[B]`` ints in 0..255, kind ``[B]`` int16.
    """
    payload: dict[str, Any] = {"tick": int(tick)}
    if isinstance(types, str):
        payload["event_type"] = types
    else:
        payload["event_types"] = list(types)
    if isinstance(result, EmitResult):
        payload["one"] = True  # replayed through emit(), the path it took
        ids = np.array([result.token_id], np.int64)
        novel = np.array([result.is_novel], bool)
    else:
        ids = result.token_ids.numpy().astype(np.int64, copy=False)
        novel = result.is_novel.numpy().astype(bool, copy=False)
    if meta:
        payload["meta"] = dict(meta)
    if labels is not None:
        same = all(v == labels[0] for v in labels)
        payload["label" if same else "labels"] = labels[0] if same else list(labels)
    arrays = {
        "vectors": np.asarray(x, np.float32),
        "priorities": np.asarray(priority).astype(np.uint8),
        "kinds": np.asarray(kind, np.int16),
        "token_ids": ids,
        "is_novel": novel,
    }
    if blobs is not None:
        arrays["payload_lengths"] = np.array([-1 if b is None else len(b) for b in blobs], np.int64)
        arrays["payload_bytes"] = np.frombuffer(b"".join(b for b in blobs if b is not None), np.uint8)
    return payload, arrays


def _logged_payloads(arrays: Mapping[str, np.ndarray]) -> list[Any] | None:
    """The payloads of a logged emit, decoded (``None`` when it logged none)."""
    lengths = arrays.get("payload_lengths")
    if lengths is None:
        return None
    data = arrays["payload_bytes"].tobytes()
    out: list[Any] = []
    offset = 0
    for n in lengths.tolist():
        if n < 0:
            out.append(None)
            continue
        out.append(decode_payload(data[offset : offset + n]))
        offset += n
    return out


@register_op("emit")
def _replay_emit(engine: Engine, rec: Record) -> int:
    """Re-run the call through the public method it came from (metadata only travels with events)."""
    a, p = rec.arrays, rec.payload
    off = int(engine.tick != p.get("tick", engine.tick))
    x, pri, kind = a["vectors"], a["priorities"].astype(np.int64), a["kinds"].astype(np.int64)
    payloads = _logged_payloads(a)
    labels = p.get("label", p.get("labels"))
    if p.get("one"):
        one = payloads[0] if payloads is not None else None
        r = engine.emit(p["event_type"], x[0], int(pri[0]), kind=int(kind[0]), label=labels, payload=one)
        ids = np.array([r.token_id])
    else:
        kinds = int(kind[0]) if kind.size and (kind == kind[0]).all() else kind  # one kind: no per-row loop
        types = p["event_type"] if "event_type" in p else p["event_types"]
        batch = engine.emit_batch(types, x, pri, kinds=kinds, labels=labels, payloads=payloads)
        ids = batch.token_ids.numpy()
    return off + int(np.count_nonzero(ids != a["token_ids"]))


# --- add_tokens -------------------------------------------------------------------------------------
@register_op("add_tokens")
def _replay_add_tokens(engine: Engine, rec: Record) -> int:
    a = rec.arrays
    ids = engine.add_tokens(a["vectors"], a["priorities"].astype(np.int64), kinds=a["kinds"])
    return int(np.count_nonzero(np.asarray(ids) != a["token_ids"]))


# --- the CDNA ---------------------------------------------------------------------------------------
@register_op("cdna.update")
def _replay_cdna_update(engine: Engine, rec: Record) -> int:
    engine.update_cdna(**rec.payload["changes"])
    return _stamp(engine, rec)


@register_op("cdna.set")
def _replay_cdna_set(engine: Engine, rec: Record) -> int:
    engine.set_cdna(CDNA.from_dict(rec.payload["cdna"]))
    return _stamp(engine, rec)


@register_op("cdna.rollback")
def _replay_cdna_rollback(engine: Engine, rec: Record) -> int:
    engine.rollback_cdna()
    return _stamp(engine, rec)


def _stamp(engine: Engine, rec: Record) -> int:
    """The audit entry of a replayed change carries the record's time (not the time of the replay)."""
    engine.history.log[-1]["time"] = rec.time
    version = rec.payload.get("version")
    return int(version is not None and version != engine.cdna.version)


# --- dynamics, the hierarchy, edge upkeep ----------------------------------------------------------
@register_op("step")
def _replay_step(engine: Engine, rec: Record) -> int:
    """Re-run the steps (the dynamics are re-run, not replayed bit for bit: ``docs/persistence.md``)."""
    engine.run(rec.payload["n"], every=rec.payload["every"])
    return 0


@register_op("hierarchy")
def _replay_hierarchy(engine: Engine, rec: Record) -> int:
    engine.hierarchy()
    return 0


@register_op("options")
def _replay_options(engine: Engine, rec: Record) -> int:
    """An option that shapes the state changed (``eng.hierarchy_every = 10``)."""
    engine._set_options(rec.payload)
    return 0


@register_op("learn")
def _replay_learn(engine: Engine, rec: Record) -> int:
    engine.learn(rec.payload.get("failed") or None)
    return 0


# --- the store's first record -----------------------------------------------------------------------
@register_op("init")
def _replay_init(engine: Engine, rec: Record) -> int:
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in rec.arrays.items()}
    restore(engine, tensors, rec.payload)
    return 0
