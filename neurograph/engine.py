"""The engine: the one stateful orchestrator of neurograph (DESIGN §1, §10).

An :class:`Engine` owns the token and edge tensors, the neighbour index, the CDNA history, the Guardian,
the event bus, the force-field dynamics and, with ``path=``, the store. It is a facade: every operation
validates through the Guardian, hands the work to the package that owns the concept, then records
(the store's log), counts and publishes (the bus) in one place:

==============================  ======================================  ==================================
operation                       the work                                logged as / published as
==============================  ======================================  ==================================
``emit``, ``emit_batch``        :mod:`neurograph.emit`                  ``emit`` / ``signals``
``add_tokens``                  :class:`~neurograph.state.TokenState`   ``add_tokens``
``step``, ``run``               :mod:`neurograph.fields`                ``step`` / ``dynamics.stepped``
``hierarchy``                   :mod:`neurograph.hierarchy`             ``hierarchy`` / ``field.*``
``learn``                       :mod:`neurograph.emit.hebbian`          ``learn`` / ``learning.applied``
``update_cdna`` ...             :mod:`neurograph.cdna`, the Guardian    ``cdna.*`` / ``cdna.updated``
``query``, ``tokens``, ...      :mod:`neurograph.query` (read only)     --
==============================  ======================================  ==================================

Replays of logged operations live in :mod:`neurograph.persist.ops`.

Engine time: ``tick`` counts accepted signals; row ``i`` of a batch happens at ``tick + i``. Tokens record
the tick they were born and last seen.

``SignalSystem`` is the same class under the seed project's name, so
``SignalSystem().emit(event_type="signal.input.text", vector=[...], priority=200)["token_id"]`` works.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from neurograph import display
from neurograph.cdna import CDNA, CDNAHistory
from neurograph.emit import (
    BatchResult,
    EmitResult,
    EmitState,
    LearningStats,
    apply_learning,
    ingest_batch,
    ingest_one,
)
from neurograph.errors import InvalidArgument, QuotaExceeded, StoreError, UnknownToken
from neurograph.events import EventBus, Subscription
from neurograph.fields import Dynamics, StepStats
from neurograph.guardian import Guardian
from neurograph.hierarchy import Hierarchy, rebuild_hierarchy
from neurograph.kinds import ENTITY_KINDS
from neurograph.memory import TokenMemory, decode_payload
from neurograph.neighbors import NeighborIndex
from neurograph.persist import Store, StoreConfig, is_store
from neurograph.query import Encoder, Query, edges_frame, run_query, tokens_frame
from neurograph.space import AXES
from neurograph.state import EdgeState, TokenState
from neurograph.telemetry import correlation_id, span

__all__ = ["Engine", "SignalSystem"]

_log = logging.getLogger("neurograph.engine")
_UNSET: Any = object()  # an option not given: a new engine takes the default, an opened store its own
_F = TypeVar("_F", bound=Callable[..., Any])


def _serialised(method: _F) -> _F:
    """Run ``method`` under the engine's lock: calls from several threads happen one at a time, whole."""

    @functools.wraps(method)
    def locked(self: Engine, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class Engine:
    """Tokens in an 8-D semantic space, judged novel or familiar, linked and bounded by a CDNA.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` works too).
        cdna: a :class:`CDNA`, a profile name (``"default"``, ``"explorer"``, ...), a mapping of CDNA
            fields, or ``None`` for the default profile.
        seed: seeds the engine's random generators (Langevin noise, sampling).
        capacity: initial token capacity (doubles when full).
        index_backend: neighbour search backend, see :class:`~neurograph.neighbors.NeighborIndex`.
        bus: an :class:`~neurograph.events.EventBus` to publish on (a new one by default).
        hierarchy_every: rebuild the hierarchy every this many dynamics steps (``None``, the default: only
            when :meth:`hierarchy` is called). Kept by the store (see :attr:`options`).
        dynamics: force-field backend of :meth:`step` / :meth:`run` (kept by the store, see
            :attr:`options`): ``"auto"`` (``eager`` on the CPU, ``triton`` on CUDA when triton is
            importable, else ``compiled``), ``"reference"``, ``"eager"``, ``"compiled"`` or ``"triton"``;
            see :mod:`neurograph.fields.backends`.
        store_payloads: keep the payloads of signals (``emit(..., payload=...)``; default ``True``).
            ``False`` keeps none of them, for privacy: they are neither stored nor logged (labels and
            signal ids still are). Kept by the store (see :attr:`options`).
        path: a store directory (DESIGN §8): created if missing, continued (state loaded, its CDNA and
            seed in force) if it holds a store; every state change is logged there before it returns.
            ``None``: in memory only. See ``docs/persistence.md``.
        durability: ``"full"`` (fsync per call, survives power loss), ``"normal"`` or ``"off"`` (survive
            a killed process); see :mod:`neurograph.persist.log`.
        snapshot_every: take a snapshot every this many logged signals (``None``: only ``save()`` and
            ``close()``).
        snapshot_seconds: take one when this many seconds passed since the last (checked when logging).
        keep_snapshots: snapshots kept; the log before the oldest kept one is compacted away.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        cdna: CDNA | str | Mapping[str, Any] | None = None,
        seed: int = 0,
        path: str | os.PathLike[str] | None = None,
        *,
        capacity: int = 1024,
        index_backend: str = "auto",
        bus: EventBus | None = None,
        durability: str = "full",
        snapshot_every: int | None = None,
        snapshot_seconds: float | None = None,
        keep_snapshots: int = 3,
        hierarchy_every: Any = _UNSET,  # int | None
        dynamics: Any = _UNSET,  # str
        store_payloads: Any = _UNSET,  # bool
    ) -> None:
        self._lock = threading.RLock()  # every public operation holds it: one at a time, from any thread
        self._worker: ThreadPoolExecutor | None = None  # the engine's own thread for async adapters (call)
        self.device = _resolve_device(device)
        self.history = CDNAHistory([CDNA.resolve(cdna)])
        self.bus = bus if bus is not None else EventBus()
        self.guardian = Guardian(publish=self.bus.publish)
        self.token_state = TokenState(capacity, self.device)
        self.edge_state = EdgeState(4 * capacity, capacity, self.cdna.max_degree, self.device)
        self.index = NeighborIndex(self.token_state, self.cdna.axis_scale, backend=index_backend)
        self._stores = EmitState(self.token_state, self.edge_state, self.index, self.guardian)
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.tick = 0
        self._counters = {"signals": 0, "novel": 0, "calls": 0, "emit_ns": 0}
        self._store: Store | None = None  # attached last (below): loading replays through the methods
        options = {"hierarchy_every": hierarchy_every, "dynamics": dynamics, "store_payloads": store_payloads}
        given = {k: v for k, v in options.items() if v is not _UNSET}  # the options the caller passed
        keep = given.get("store_payloads", True)
        if not isinstance(keep, bool):
            raise InvalidArgument("store_payloads", keep, "must be True or False")
        self.memory = TokenMemory(self.cdna.memory_sample, salt=self.seed, keep_payloads=keep)
        self._dynamics_name = given.get("dynamics", "auto")
        self.dynamics = Dynamics(self._dynamics_name, self.device)  # force field, neighbour list, step count
        self._hierarchy_every: int | None = None
        self.hierarchy_every = given.get("hierarchy_every")  # periodic rebuilds (dynamics steps; validated)
        self._hierarchy_steps = 0  # dynamics steps since the last rebuild
        self._learned_at = 0  # tick of the last learn() (decay before it is applied)
        # persistence (issue 6): keep this block last in __init__, loading a store replays the log through
        # the engine's own methods, which need every attribute above
        if path is not None:
            config = StoreConfig(durability, snapshot_every, snapshot_seconds, keep_snapshots)
            self._store = Store.attach(self, path, config, cdna_given=cdna is not None, options_given=given)

    # --- the constitution ---------------------------------------------------------------------------
    @property
    def cdna(self) -> CDNA:
        """The constitution in force."""
        return self.history.current

    @_serialised
    def update_cdna(self, **changes: Any) -> CDNA:
        """Make a new CDNA version with ``changes`` and bring the state within its bounds.

        Raises:
            InvalidCDNA: unknown fields or broken rules (all listed); nothing changes.
            QuotaExceeded: a wider degree bound would grow the adjacency tables past the memory quota
                (nothing changes).
        """
        self.guardian.check_widening(self.cdna.replace(**changes), self.token_state, self.edge_state)
        new = self.history.update(**changes)
        self._conform()
        self.bus.publish(
            "status", "cdna.updated", {"version": new.version, "hash": new.hash, "changes": changes}
        )
        self._record("cdna.update", {"changes": changes, "version": new.version})
        return new

    @_serialised
    def set_cdna(self, cdna: CDNA | str) -> CDNA:
        """Switch to another whole constitution (a :class:`CDNA` or a profile name) as a new version."""
        cdna = CDNA.resolve(cdna)
        self.guardian.check_widening(cdna, self.token_state, self.edge_state)
        new = self.history.set(cdna)
        self._conform()
        self.bus.publish(
            "status", "cdna.updated", {"version": new.version, "hash": new.hash, "name": new.name}
        )
        self._record("cdna.set", {"cdna": new.to_dict(), "version": new.version})
        return new

    @_serialised
    def rollback_cdna(self) -> CDNA:
        """Go back exactly one CDNA version (the state is brought within its bounds)."""
        if len(self.history) > 1:
            self.guardian.check_widening(self.history.versions[-2], self.token_state, self.edge_state)
        cur = self.history.rollback()
        self._conform()
        self.bus.publish("status", "cdna.rolled_back", {"version": cur.version, "hash": cur.hash})
        self._record("cdna.rollback", {"version": cur.version})
        return cur

    def _conform(self) -> None:
        """Bring the state within the CDNA in force (the Guardian's rule) and rescale the index."""
        self.guardian.conform(self.cdna, self.token_state, self.edge_state)
        self.index.set_scale(self.cdna.axis_scale)
        self.memory.set_sample_size(self.cdna.memory_sample)

    # --- signals ------------------------------------------------------------------------------------
    @_serialised
    def emit(
        self,
        event_type: str,
        vector: Any,
        priority: int = 128,
        *,
        label: str | None = None,
        payload: Any = None,
        **meta: Any,
    ) -> EmitResult:
        """Process one signal (DESIGN §3).

        Args:
            event_type: dotted lowercase type, e.g. ``"signal.input.external.text.chat"``.
            vector: 8 finite numbers, one per axis of :data:`~neurograph.space.AXES`.
            priority: integer 0..255 (mass of a new token grows with it).
            label: a short string the signal carries (a category, a user-level type such as ``'user'``):
                the new token's ``label`` (queries: ``where label = 'user'``); a resonating token counts
                it (:mod:`neurograph.memory`).
            payload: what the signal stood for (a text, a row id, a small JSON-able dict), kept with the
                token it made or sampled into a resonating token's memory (``eng.token(id)``).
            **meta: ``kind`` (entity type name or code of a new token, default ``"concept"``); every other
                key travels with the published event.

        Returns:
            An :class:`~neurograph.emit.results.EmitResult`.

        Raises:
            InvalidSignal: malformed input, a label or payload too long or a payload not JSON-able
                (nothing changes).
            QuotaExceeded: a new token or edge, or the payload, would break a quota (nothing changes).
        """
        t0 = time.perf_counter_ns()
        cdna = self.cdna
        g = self.guardian
        event_type = g.check_event_type(event_type)
        x, _ = g.check_vectors(vector, cdna, batch=False)
        pri = g.check_priorities(priority, 1, batch=False)
        kind = g.check_kinds(meta.pop("kind", None), 1)
        labels = g.check_labels(label, 1, cdna, batch=False)
        blobs = g.check_payloads(payload, 1, cdna, self.memory.payload_bytes, batch=False)
        with span("emit", event_type=event_type) as s:
            if self.device.type == "cpu":  # the row path: the batch's planner functions, no batch overhead
                result = ingest_one(self._stores, cdna, x[0], int(pri[0]), int(kind[0]), self.tick, t0)
            else:  # a batch of one, on the device
                result = ingest_batch(self._stores, cdna, x, pri, kind, self.tick)[0]
            self._accepted(event_type, x, pri, kind, meta, result, t0, labels, blobs)
            if s is not None:
                s.set_attributes(
                    {"neurograph.token_id": result.token_id, "neurograph.is_novel": result.is_novel}
                )
        return result

    @_serialised
    def emit_batch(
        self,
        event_types: str | Sequence[str],
        vectors: Any,
        priorities: int | Sequence[int] | np.ndarray | torch.Tensor = 128,
        *,
        kinds: str | int | Sequence[str | int] | None = None,
        labels: str | Sequence[str | None] | None = None,
        payloads: Sequence[Any] | None = None,
        **meta: Any,
    ) -> BatchResult:
        """Process ``B`` signals with the results of emitting them one by one, in order.

        Reinforcement updates (positions and masses of resonating tokens) land after the batch, composed
        exactly as sequential updates would be.

        Args:
            event_types: one type for all rows or a list of ``B`` types.
            vectors: ``[B, 8]`` numbers.
            priorities: one int for all rows or ``B`` ints in 0..255.
            kinds: entity kind of the new tokens: one for all rows or ``B`` (default ``"concept"``).
            labels: one label for all rows, or ``B`` labels or ``None`` (see :meth:`emit`).
            payloads: ``B`` payloads or ``None`` (see :meth:`emit`).
            **meta: travels with the published events.

        Returns:
            A :class:`~neurograph.emit.results.BatchResult`.
        """
        t0 = time.perf_counter_ns()
        cdna = self.cdna
        x, _ = self.guardian.check_vectors(vectors, cdna, batch=True)
        b = x.shape[0]
        types = self.guardian.check_event_types(event_types, b)
        pri = self.guardian.check_priorities(priorities, b, batch=True)
        kind = self.guardian.check_kinds(kinds, b)
        labs = self.guardian.check_labels(labels, b, cdna, batch=True)
        blobs = self.guardian.check_payloads(payloads, b, cdna, self.memory.payload_bytes, batch=True)
        with span("emit_batch", rows=b):
            batch = ingest_batch(self._stores, cdna, x, pri, kind, self.tick)
            self._accepted(types, x, pri, kind, meta, batch, t0, labs, blobs)
        return batch

    @_serialised
    def add_tokens(
        self, vectors: Any, priorities: int | Sequence[int] = 128, *, kinds: Any = None
    ) -> np.ndarray:
        """Insert tokens directly at ``vectors [B, 8]`` without novelty checks or edges (e.g. to seed an
        engine with a data set). Returns their ids ``[B]``."""
        cdna = self.cdna
        x, _ = self.guardian.check_vectors(vectors, cdna, batch=True)
        b = x.shape[0]
        pri = self.guardian.check_priorities(priorities, b, batch=True)
        kind = self.guardian.check_kinds(kinds, b)
        self.guardian.check_growth(cdna, self.token_state, self.edge_state, new_tokens=b)
        slots = self.token_state.append(
            b,
            tick=self.tick,
            pos=x,
            mass=cdna.token_mass(pri).astype(np.float32),
            radius=np.float32(cdna.token_radius),
            strength=np.float32(cdna.token_strength),
            kind=kind,
            hits=1,
        )
        self.edge_state.ensure_nodes(self.token_state.capacity, cdna.max_degree)
        self.index.add(slots)
        ids = self.token_state.gather("ids", slots)
        self._record("add_tokens", arrays={"vectors": x, "priorities": pri, "kinds": kind, "token_ids": ids})
        return ids

    def _accepted(
        self,
        types: str | list[str],
        x: np.ndarray,
        pri: np.ndarray,
        kind: np.ndarray,
        meta: Mapping[str, Any],
        result: EmitResult | BatchResult,
        t0: int,
        labels: list[str | None] | None = None,
        blobs: list[bytes | None] | None = None,
    ) -> None:
        """The one place every accepted signal passes: remember, advance the tick, count, log, publish."""
        one = isinstance(result, EmitResult)
        b = 1 if one else len(result)
        if not self.memory.keep_payloads:
            blobs = None
        codes = self.memory.intern(labels) if labels is not None else None
        if one:
            slots = self.token_state.slots_of([result.token_id])
            novel = np.array([result.is_novel])
        else:
            slots = self.token_state.slots_of(result.token_ids.numpy())
            novel = result.is_novel.numpy()
        self.memory.ensure(self.token_state.capacity, exact=True)  # the token store's layout
        self.memory.record(self.tick, slots, novel, codes, blobs)
        self.tick += b
        elapsed = time.perf_counter_ns() - t0
        c = self._counters
        c["signals"] += b
        c["novel"] += int(result.is_novel) if one else int(result.is_novel.sum())
        c["calls"] += 1
        c["emit_ns"] += elapsed
        if not one:
            result.processing_time_us = elapsed / 1e3
        self._log_emit(types, x, pri, kind, meta, result, labels, blobs)
        cid = correlation_id()
        if _log.isEnabledFor(logging.DEBUG):
            what = {"token_id": result.token_id, "is_novel": result.is_novel} if one else {"rows": b}
            _log.debug("emit", extra={"tick": self.tick, **what})
        bus = self.bus
        if isinstance(types, str):
            if not bus.has_subscribers("signals", types):
                return
            rows, typ = range(b), [types] * b
        else:
            rows, typ = [i for i, t in enumerate(types) if bus.has_subscribers("signals", t)], types
        for i in rows:
            bus.publish("signals", typ[i], _payload(result, i, pri, meta, labels, blobs, cid))

    # --- dynamics, the hierarchy of fields, edge upkeep --------------------------------------------
    @property
    def steps(self) -> int:
        """Dynamics steps integrated so far."""
        return self.dynamics.steps

    @_serialised
    def step(self, n: int = 1) -> StepStats:
        """Move the tokens ``n`` steps through the force field (DESIGN §4, ``docs/dynamics.md``).

        Springs along learned edges, soft-sphere repulsion and field wells between tokens of a level, the
        pull toward parent fields; damped, mass-aware velocity Verlet with Langevin noise at the CDNA's
        temperature, speed and force capped, positions kept in the box. Publishes one
        ``dynamics.stepped`` event on the ``metrics`` channel. Prefer ``step(n)`` with ``n >> 1`` (or
        :meth:`run`) to many ``step()``: each call ends with one extra force evaluation for the energies.

        Returns:
            A :class:`~neurograph.fields.StepStats` (energies, largest displacement, rebuilds, wall time).

        Raises:
            InvalidArgument: ``n`` (field ``steps``) is not an int ``>= 0`` (nothing changes).
        """
        _check_count("steps", n, 0)
        return self._dynamics(int(n), max(int(n), 1), None, progress=False)

    @_serialised
    def run(
        self, steps: int, every: int = 100, callback: Callable[[StepStats], Any] | None = None
    ) -> StepStats:
        """Run ``steps`` dynamics steps with a :class:`~neurograph.fields.StepStats` every ``every`` steps,
        published as ``dynamics.stepped`` on ``metrics`` (one host sync each) and passed to ``callback``;
        a ``tqdm.auto`` progress bar shows on a terminal (``TQDM_DISABLE=1`` silences it).

        Returns:
            The summary of the whole run: energies at the end, the largest displacement from the start,
            all steps, rebuilds and the wall time.

        Raises:
            InvalidArgument: ``steps`` or ``every`` malformed (nothing changes).
        """
        _check_count("steps", steps, 0)
        _check_count("every", every, 1)
        if callback is not None and not callable(callback):
            raise InvalidArgument("callback", callback, "must be callable or None")
        return self._dynamics(int(steps), int(every), callback, progress=True)

    def _dynamics(
        self, steps: int, every: Any, callback: Callable[[StepStats], Any] | None, progress: bool
    ) -> StepStats:
        def on_stats(stats: StepStats) -> None:
            self.index.invalidate()  # positions moved
            count = self.dynamics.steps
            self.bus.publish("metrics", "dynamics.stepped", lambda: {**stats.to_dict(), "step": count})
            self._hierarchy_after_steps(stats.steps)
            if callback is not None:
                callback(stats)

        t, e = self.token_state, self.edge_state
        kwargs = {"every": every, "on_stats": on_stats, "progress": progress}
        with span("step", steps=steps, tokens=t.n_alive):
            stats = self.dynamics.run(t, e, self.cdna, steps, self.generator, **kwargs)
        self._record("step", {"n": steps, "every": every})
        return stats

    # --- the hierarchy of fields and edge upkeep -----------------------------------------------------
    @_serialised
    def hierarchy(self, rebuild: bool = True) -> Hierarchy:
        """The emergent hierarchy (DESIGN §5): fields of tokens, fields of fields.

        With ``rebuild`` the fields are found afresh from the current positions, masses and links (the
        method: :mod:`neurograph.hierarchy`); fields that persist keep their ids, and ``field.born``,
        ``field.died``, ``field.merged`` and ``field.split`` are published on the ``status`` channel.
        Without it, the fields as last built.

        Returns:
            A :class:`~neurograph.hierarchy.view.Hierarchy` snapshot (levels as PyG ``Data``, ``parent(id)``,
            ``children(id)``, ``path(id)``, ``fields(level)``, ``to_networkx()``, ``to_pandas()``).

        Raises:
            QuotaExceeded: the new field tokens or ``part_of`` edges would break a quota (nothing changes).
        """
        if rebuild:
            self._rebuild_hierarchy()
            self._record("hierarchy")
        return Hierarchy.from_state(self.token_state, self.edge_state, self.tick, memory=self.memory)

    @_serialised
    def learn(self, failed: Any = None) -> LearningStats:
        """Upkeep of the learned edges now (:func:`~neurograph.emit.hebbian.apply_learning`): hypotheses decay
        over the engine ticks since their last reinforcement or the last ``learn()``, enough evidence
        promotes them, edges below ``confidence_floor`` are pruned.

        Args:
            failed: ``[P, 2]`` token id pairs whose edge predicted wrongly (confidence lowered by half the
                learning rate first); pairs without an edge are ignored.

        Returns:
            A :class:`~neurograph.emit.hebbian.LearningStats`; also published as ``learning.applied`` on
            ``metrics``.
        """
        edge_slots = None
        if failed is not None:
            pairs = np.asarray(failed, dtype=np.int64).reshape(-1, 2)
            slots = self.token_state.slots_of(pairs)  # (P, 2)
            ok = (slots >= 0).all(1)
            edge_slots = self.edge_state.find(slots[ok, 0], slots[ok, 1])
            edge_slots = edge_slots[edge_slots >= 0]
        stats = apply_learning(self.edge_state, self.cdna, self.tick, self._learned_at, edge_slots)
        self._learned_at = self.tick
        self._record("learn", {"failed": [] if failed is None else np.asarray(failed).tolist()})
        self.bus.publish("metrics", "learning.applied", stats.to_dict)
        return stats

    @property
    def hierarchy_every(self) -> int | None:
        """Rebuild the hierarchy every this many dynamics steps (``None``: only on :meth:`hierarchy`)."""
        return self._hierarchy_every

    @hierarchy_every.setter
    def hierarchy_every(self, every: int | None) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise InvalidArgument("hierarchy_every", every, "must be None or an int >= 1")
        if every != self._hierarchy_every:
            self._hierarchy_every = every
            self._record("options", {"hierarchy_every": every})

    @property
    def options(self) -> dict[str, Any]:
        """The engine options that shape the state: ``hierarchy_every``, ``dynamics`` (the backend
        asked for) and ``store_payloads``. The store keeps them (snapshots and the log), so
        ``Engine.open(path)`` restores them without arguments; an argument that contradicts the store
        raises :class:`~neurograph.errors.OptionMismatch`."""
        return {
            "hierarchy_every": self._hierarchy_every,
            "dynamics": self._dynamics_name,
            "store_payloads": self.memory.keep_payloads,
        }

    def _set_options(self, options: Mapping[str, Any]) -> None:
        """Put stored options back (snapshots and the ``options`` log record); the step count stays."""
        if "dynamics" in options and options["dynamics"] != self._dynamics_name:
            steps = self.dynamics.steps
            self._dynamics_name = options["dynamics"]
            self.dynamics = Dynamics(self._dynamics_name, self.device)
            self.dynamics.steps = steps
        if "hierarchy_every" in options:
            self.hierarchy_every = options["hierarchy_every"]
        if "store_payloads" in options:
            self.memory.keep_payloads = bool(options["store_payloads"])

    def _rebuild_hierarchy(self) -> None:
        """Rebuild the fields (:func:`~neurograph.hierarchy.rebuild_hierarchy`) and publish what changed."""
        with span("hierarchy.rebuild", tokens=self.token_state.n_alive):
            changes = rebuild_hierarchy(
                self.token_state, self.edge_state, self.cdna, self.guardian, self.tick
            )
        for event_type, data in changes:
            self.bus.publish("status", event_type, data)
        self._hierarchy_steps = 0

    def _hierarchy_after_steps(self, n: int) -> None:
        """Count ``n`` dynamics steps and rebuild when ``hierarchy_every`` have passed (call from ``step``;
        not logged separately: replaying the steps rebuilds again). A rebuild refused by a quota is skipped
        (the Guardian published ``guardian.quota``); the dynamics go on and the next period tries again."""
        self._hierarchy_steps += int(n)
        if self._hierarchy_every is not None and self._hierarchy_steps >= self._hierarchy_every:
            try:
                self._rebuild_hierarchy()
            except QuotaExceeded:
                self._hierarchy_steps = 0

    # --- the store (DESIGN §8) ------------------------------------------------------------------------
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

    @_serialised
    def save(self) -> Path:
        """Write a snapshot of the whole state now (atomically) and return its path.

        Raises:
            StoreError: the engine has no store.
        """
        if self._store is None:
            raise StoreError("this engine has no store: create it with Engine(path=...) or Engine.open(path)")
        return self._store.snapshot(self)

    @_serialised
    def close(self) -> None:
        """Snapshot what changed since the last snapshot, close the log and release the store's lock.

        The engine stays usable in memory, no longer persistent. Idempotent; ``with Engine(path=p) as eng:``
        closes on leaving the block.
        """
        if self._store is not None:
            store, self._store = self._store, None
            store.close(self)
        if self._worker is not None:
            worker, self._worker = self._worker, None
            worker.shutdown(wait=False)

    # --- async adapters (DESIGN §11: engine work never blocks an event loop) ----------------------------
    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` — an engine method such as ``eng.emit`` — on the engine's own worker
        thread and await its result, so that the caller's event loop keeps running meanwhile (an ``emit``
        with ``durability="full"`` waits for an fsync). Calls from one loop run in order; every engine
        operation also holds the engine's lock, so calls from other threads interleave whole.

        ``r = await eng.call(eng.emit, "signal.input.external.text.chat", v)``
        """
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # the caller's span and correlation id go with the work
        return await loop.run_in_executor(self.worker, ctx.run, functools.partial(fn, *args, **kwargs))

    @property
    def worker(self) -> ThreadPoolExecutor:
        """The engine's worker thread (one), started on first use; :meth:`close` stops it."""
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="neurograph-engine")
            return self._worker

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
        self,
        types: Any,
        x: np.ndarray,
        pri: np.ndarray,
        kind: np.ndarray,
        meta: Any,
        result: Any,
        labels: list[str | None] | None,
        blobs: list[bytes | None] | None,
    ) -> None:
        """Log an accepted ``emit`` / ``emit_batch`` (durable when the call returns)."""
        if self._store is not None:
            self._store.record_emit(self, types, x, pri, kind, meta, result, labels, blobs)

    # --- inspection ---------------------------------------------------------------------------------
    @_serialised
    def tokens(self) -> pd.DataFrame:
        """Alive tokens, one row each: id, kind, level, parent (id, -1 none), mass, radius, strength, hits,
        one column per axis, activation, born, seen, label (the creating signal's; a field's: the most
        frequent label of the signals below it) and text (the creating signal's payload text)."""
        return tokens_frame(self.token_state, self.memory)

    @_serialised
    def edges(self) -> pd.DataFrame:
        """Alive edges: id, source and target (token ids), kind, relation group, weight, rest, confidence,
        mutability, evidence, updated (tick)."""
        return edges_frame(self.edge_state, self.token_state)

    @_serialised
    def stats(self) -> dict[str, Any]:
        """Counters and sizes: tokens, edges, signals, novel rate, throughput, memory, CDNA version."""
        c = self._counters
        t, e = self.token_state, self.edge_state
        secs = c["emit_ns"] / 1e9
        return {
            "tokens": t.n_alive,
            "edges": e.n_alive,
            "tick": self.tick,
            "signals": c["signals"],
            "novel": c["novel"],
            "novel_rate": c["novel"] / c["signals"] if c["signals"] else 0.0,
            "calls": c["calls"],
            "events_per_s": c["signals"] / secs if secs > 0 else 0.0,
            "rejected": self.guardian.rejected,
            "clamped": self.guardian.clamped,
            "quota_refusals": self.guardian.quota_refusals,
            "token_capacity": t.capacity,
            "edge_capacity": e.capacity,
            "memory_bytes": t.nbytes() + e.nbytes(),
            "device": str(self.device),
            "cdna_version": self.cdna.version,
            "cdna_hash": self.cdna.hash,
            "index": repr(self.index),
        }

    @_serialised
    def token(self, token_id: int) -> dict[str, Any]:
        """One token as a dict: id, kind, level, mass, hits, position, and what it stands for (see
        :meth:`~neurograph.memory.TokenMemory.token`): ``signal`` (the id of the signal that created it),
        ``label``, ``payload``, ``resonances``, ``sample`` (signals that resonated with it, each with its
        label and payload) and ``label_counts``. Raises :class:`UnknownToken`."""
        slot = int(self.token_state.slots_of([token_id])[0])
        if slot < 0:
            raise UnknownToken(token_id)
        t = self.token_state
        pos = t.gather("pos", np.array([slot]))[0]
        out = {
            "id": int(token_id),
            "kind": ENTITY_KINDS[int(t.gather("kind", np.array([slot]))[0])],
            "level": int(t.gather("level", np.array([slot]))[0]),
            "mass": float(t.gather("mass", np.array([slot]))[0]),
            "hits": int(t.gather("hits", np.array([slot]))[0]),
            "position": dict(zip(AXES, pos.tolist())),
            **self.memory.token(slot),
        }
        if out["level"] > 0:  # a field stands for the signals below it: its label is their majority
            leaves = self._leaves_below(slot)
            out["label"] = self.memory.majority_of(leaves)
            out["label_counts"] = dict(self.memory.label_counts(leaves))
        return out

    def _leaves_below(self, slot: int) -> np.ndarray:
        """Slots of the level-0 tokens below the field in ``slot``."""
        t = self.token_state
        n = t.count
        parent = t.parent[:n].cpu().numpy()
        level = t.level[:n].cpu().numpy()
        alive = t.alive[:n].cpu().numpy()
        holder = np.arange(n)
        for _ in range(int(level[slot])):
            holder = np.where(holder >= 0, parent[np.maximum(holder, 0)], -1)
        return np.nonzero((holder == slot) & (level == 0) & alive)[0]

    # --- queries ------------------------------------------------------------------------------------
    @_serialised
    def query(self, text: str | Query, *, encoder: Encoder | None = None) -> pd.DataFrame:
        """Rows of tokens, nodes, fields or edges selected by a query (the language: ``docs/query.md``).

        ``eng.query("find all nodes where type = 'concept' and mass > 1 order by hits desc limit 10")``;
        ``near [8 numbers] within r`` adds a ``distance`` column (CDNA ``axis_scale`` metric) and orders by
        it; ``near "<text>"`` needs ``encoder`` (``str -> 8 numbers``, e.g. the gateway's). Read only.

        Returns:
            A DataFrame with the columns of :meth:`tokens` / :meth:`edges` (plus ``distance``).

        Raises:
            InvalidQuery: a malformed query, with its line, column and what was expected there.
        """
        return run_query(
            text, self.token_state, self.edge_state, self.cdna.axis_scale, encoder=encoder, memory=self.memory
        )

    # --- events -------------------------------------------------------------------------------------
    def subscribe(
        self, spec: str | Mapping[str, Any] = "*", callback: Callable[..., Any] | None = None, **kwargs: Any
    ) -> Subscription:
        """Subscribe to the engine's events (a type pattern like ``"signal.input.*"`` or a filter dict);
        without a callback the subscription is an async iterator. See :class:`~neurograph.events.EventBus`."""
        return self.bus.subscribe(spec, callback, **kwargs)

    def _repr_html_(self) -> str:
        return display.status_html(self.stats(), repr(self))

    def __repr__(self) -> str:
        return (
            f"Engine(device={str(self.device)!r}, tokens={self.token_state.n_alive}, "
            f"edges={self.edge_state.n_alive}, "
            f"tick={self.tick}, cdna={self.cdna.name!r} v{self.cdna.version})"
        )


SignalSystem = Engine


def _payload(
    result: EmitResult | BatchResult,
    i: int,
    priorities: np.ndarray,
    meta: Mapping[str, Any],
    labels: list[str | None] | None,
    blobs: list[bytes | None] | None,
    cid: str | None = None,
) -> Callable[[], dict[str, Any]]:
    """The event data of row ``i``, built only when a subscriber reads it (with the correlation id of the
    call that emitted it, :mod:`neurograph.telemetry`)."""

    def build() -> dict[str, Any]:
        data = (result if isinstance(result, EmitResult) else result[i]).to_dict()
        data["priority"] = int(priorities[i])
        if meta:
            data["meta"] = dict(meta)
        if labels is not None and labels[i] is not None:
            data["label"] = labels[i]
        if blobs is not None and blobs[i] is not None:
            data["payload"] = decode_payload(blobs[i])
        if cid is not None:
            data["correlation_id"] = cid
        return data

    return build


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument("device", device, "must be 'cpu' or 'cuda[:N]'") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgument("device", device, "must be 'cpu' or 'cuda[:N]'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device", device, "asks for CUDA, which is not available here")
    return dev


def _check_count(name: str, value: Any, low: int) -> None:
    """Refuse a count that is not an int ``>= low`` (``step(-5)``, ``step("10")``, ``run(10, every=0)``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidArgument(name, value, f"must be an int >= {low}")
