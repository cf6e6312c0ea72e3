"""Crash-safe persistence: a durable event log, atomic snapshots and recovery (DESIGN §8).

``Engine(path=...)`` keeps its state in a *store* directory. Every operation that changes the state
(``emit``, ``emit_batch``, ``add_tokens``, CDNA updates, sets and rollbacks) is appended to an event log in
SQLite (WAL journal mode) before the call returns; snapshots of every tensor (safetensors, with JSON
metadata) are written atomically now and then; ``Engine.open(path)`` loads the newest valid snapshot and
re-runs the log after it. A signal whose ``emit`` returned is never lost, whatever kills the process.

Modules, one concept each:

- :mod:`~neurograph.persist.log`: the SQLite event log and the durability modes;
- :mod:`~neurograph.persist.snapshot`: engine <-> tensors + metadata, atomic snapshot files;
- :mod:`~neurograph.persist.ops`: what each operation logs and how it is replayed (extend it here);
- :mod:`~neurograph.persist.store`: the store directory, the schedule, recovery;
- :mod:`~neurograph.persist.format`: the format version.

Extending: a new state-changing engine method logs itself with ``self._record(op, payload)`` and
registers its replay with :func:`register_op`; engine state outside the tensors that snapshots must carry
is registered with :func:`register_state` (``docs/persistence.md``).
"""

from __future__ import annotations

from neurograph.persist.format import FORMAT_VERSION
from neurograph.persist.log import DURABILITY, EventLog, Record
from neurograph.persist.ops import OPS, ReplaySummary, register_op
from neurograph.persist.snapshot import STATE, DamagedSnapshot, read_snapshot, register_state
from neurograph.persist.store import Store, StoreConfig, is_store

__all__ = [
    "DURABILITY",
    "FORMAT_VERSION",
    "OPS",
    "STATE",
    "DamagedSnapshot",
    "EventLog",
    "Record",
    "ReplaySummary",
    "Store",
    "StoreConfig",
    "is_store",
    "read_snapshot",
    "register_op",
    "register_state",
]
