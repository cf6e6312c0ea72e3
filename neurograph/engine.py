"""The engine: the one stateful orchestrator of neurograph.

An :class:`Engine` owns the token and edge tensors, the neighbour index, the CDNA history, the Guardian
and the event bus. Signals come in through :meth:`Engine.emit` (one) and :meth:`Engine.emit_batch`
(many, with the same results as emitting the rows in order; DESIGN §3); the work of a batch is in
:mod:`neurograph.emit.batch`. Every accepted signal is published on the bus's ``signals`` channel (the payload
is only built when someone listens), every CDNA change on ``status`` and every Guardian decision on
``logs``.

The engine's other operations live beside it, one concept a module: the force-field dynamics, the
hierarchy of fields and edge upkeep in :mod:`neurograph.engine_emergence` (``step``, ``run``,
``hierarchy``, ``learn``), the store in :mod:`neurograph.engine_store` (``Engine(path=...)``,
``Engine.open``, ``save``, ``close``). ``query`` is here, over :mod:`neurograph.query`.

Engine time: ``tick`` counts accepted signals; row ``i`` of a batch happens at ``tick + i``. Tokens record
the tick they were born and last seen.

``SignalSystem`` is the same class under the seed project's name, so
``SignalSystem().emit(event_type="signal.input.text", vector=[...], priority=200)["token_id"]`` works.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurograph.cdna import CDNA, CDNAHistory
from neurograph.emit.batch import Stores, ingest_batch
from neurograph.emit.results import BatchResult, EmitResult
from neurograph.emit.single import ingest_one
from neurograph.engine_emergence import EmergenceOps
from neurograph.engine_store import StoreOps
from neurograph.errors import InvalidSignal, UnknownToken
from neurograph.events import EventBus, Subscription
from neurograph.fields import Dynamics
from neurograph.guardian import Guardian
from neurograph.kinds import ENTITY_KINDS
from neurograph.neighbors import NeighborIndex
from neurograph.persist import Store, StoreConfig
from neurograph.query import Encoder, Query, run_query
from neurograph.query.tables import edges_frame, tokens_frame
from neurograph.space import AXES
from neurograph.state import EdgeState, TokenState, planned_bytes

__all__ = ["Engine", "SignalSystem"]


class Engine(EmergenceOps, StoreOps):
    """Tokens in an 8-D semantic space, judged novel or familiar, linked and bounded by a CDNA.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` works too).
        cdna: a :class:`CDNA`, a profile name (``"default"``, ``"explorer"``, ...), a mapping of CDNA
            fields, or ``None`` for the default profile.
        seed: seeds the engine's random generators (Langevin noise, sampling).
        capacity: initial token capacity (doubles when full).
        index_backend: neighbour search backend, see :class:`~neurograph.neighbors.NeighborIndex`.
        bus: an :class:`~neurograph.events.EventBus` to publish on (a new one by default).
        hierarchy_every: rebuild the hierarchy every this many dynamics steps (``None``: only when
            :meth:`hierarchy` is called).
        dynamics: force-field backend of :meth:`step` / :meth:`run`: ``"auto"`` (``eager`` on the CPU,
            ``triton`` on CUDA when triton is importable, else ``compiled``), ``"reference"``, ``"eager"``,
            ``"compiled"`` or ``"triton"``; see :mod:`neurograph.fields.backends`.
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
        hierarchy_every: int | None = None,
        dynamics: str = "auto",
    ) -> None:
        self.device = _resolve_device(device)
        self.history = CDNAHistory([_resolve_cdna(cdna)])
        self.bus = bus if bus is not None else EventBus()
        self.guardian = Guardian(publish=self.bus.publish)
        self.token_state = TokenState(capacity, self.device)
        self.edge_state = EdgeState(4 * capacity, capacity, self.cdna.max_degree, self.device)
        self.index = NeighborIndex(self.token_state, self.cdna.axis_scale, backend=index_backend)
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.tick = 0
        self._counters = {"signals": 0, "novel": 0, "calls": 0, "emit_ns": 0}
        self.dynamics = Dynamics(dynamics, self.device)  # issue 3: force field, neighbour list, step counter
        self.hierarchy_every = hierarchy_every  # issue 4: periodic rebuilds (dynamics steps; validated)
        self._hierarchy_steps = 0  # dynamics steps since the last rebuild
        self._learned_at = 0  # tick of the last learn() (decay before it is applied)
        # persistence (issue 6): keep this block last in __init__, loading a store replays the log through
        # the engine's own methods, which need every attribute above
        self._store: Store | None = None
        if path is not None:
            config = StoreConfig(durability, snapshot_every, snapshot_seconds, keep_snapshots)
            self._store = Store.attach(self, path, config, cdna_given=cdna is not None)

    # --- the constitution ---------------------------------------------------------------------------
    @property
    def cdna(self) -> CDNA:
        """The constitution in force."""
        return self.history.current

    def update_cdna(self, **changes: Any) -> CDNA:
        """Make a new CDNA version with ``changes`` and bring the state within its bounds.

        Raises:
            InvalidCDNA: unknown fields or broken rules (all listed); nothing changes.
            QuotaExceeded: a wider degree bound would grow the adjacency tables past the memory quota
                (nothing changes).
        """
        self._check_widening(self.cdna.replace(**changes))
        new = self.history.update(**changes)
        self._conform()
        self.bus.publish(
            "status", "cdna.updated", {"version": new.version, "hash": new.hash, "changes": changes}
        )
        self._record("cdna.update", {"changes": changes, "version": new.version})
        return new

    def set_cdna(self, cdna: CDNA | str) -> CDNA:
        """Switch to another whole constitution (a :class:`CDNA` or a profile name) as a new version."""
        cdna = _resolve_cdna(cdna)
        self._check_widening(cdna)
        new = self.history.set(cdna)
        self._conform()
        self.bus.publish(
            "status", "cdna.updated", {"version": new.version, "hash": new.hash, "name": new.name}
        )
        self._record("cdna.set", {"cdna": new.to_dict(), "version": new.version})
        return new

    def rollback_cdna(self) -> CDNA:
        """Go back exactly one CDNA version (the state is brought within its bounds)."""
        if len(self.history) > 1:
            self._check_widening(self.history.versions[-2])
        cur = self.history.rollback()
        self._conform()
        self.bus.publish("status", "cdna.rolled_back", {"version": cur.version, "hash": cur.hash})
        self._record("cdna.rollback", {"version": cur.version})
        return cur

    def _check_widening(self, cdna: CDNA) -> None:
        """Refuse, before anything changes, a CDNA whose wider degree bound would reallocate the
        adjacency tables past its memory quota or the free device memory."""
        after, alloc = planned_bytes(self.token_state, self.edge_state, 0, 0, cdna.max_degree)
        if alloc:
            self.guardian.check_growth(
                cdna, tokens_after=0, edges_after=0, bytes_after=after, alloc_bytes=alloc, device=self.device
            )

    def _conform(self) -> None:
        """Clamp every stored value into the bounds of the CDNA in force and enforce the degree bound."""
        c = self.cdna
        t, e = self.token_state, self.edge_state
        n = t.count
        lo = torch.tensor(c.axis_min, device=self.device)
        hi = torch.tensor(c.axis_max, device=self.device)
        t.pos[:n] = torch.maximum(torch.minimum(t.pos[:n], hi), lo)
        field = t.level[:n] > 0  # fields weigh the sum of their children, bounded by field_mass_max
        upper = torch.where(field, c.field_mass_max, c.mass_max).to(t.mass.dtype)
        t.mass[:n] = torch.minimum(t.mass[:n].clamp_min(c.mass_min), upper)
        t.radius[:n].clamp_(c.radius_min, c.radius_max)
        t.strength[:n].clamp_(c.strength_min, c.strength_max)
        m = e.count
        e.weight[:m].clamp_(c.weight_min, c.weight_max)
        e.rest[:m].clamp_(c.rest_min, c.rest_max)
        e.ensure_nodes(t.capacity, c.max_degree)
        over = np.nonzero(e.gather("degree", np.arange(e.adj.shape[0])) > c.max_degree)[0]
        if over.size:  # keep each token's most confident edges
            rows = e.gather("adj", over)
            conf = np.where(rows >= 0, e.gather("confidence", np.maximum(rows, 0)), -np.inf)
            order = np.argsort(-conf, axis=1, kind="stable")
            drop = np.take_along_axis(rows, order, 1)[:, c.max_degree :]
            e.remove(drop[drop >= 0])
        self.index.set_scale(c.axis_scale)

    # --- signals ------------------------------------------------------------------------------------
    def emit(self, event_type: str, vector: Any, priority: int = 128, **meta: Any) -> EmitResult:
        """Process one signal (DESIGN §3).

        Args:
            event_type: dotted lowercase type, e.g. ``"signal.input.external.text.chat"``.
            vector: 8 finite numbers, one per axis of :data:`~neurograph.space.AXES`.
            priority: integer 0..255 (mass of a new token grows with it).
            **meta: ``kind`` (entity type name or code of a new token, default ``"concept"``); every other
                key travels with the published event.

        Returns:
            An :class:`~neurograph.emit.results.EmitResult`.

        Raises:
            InvalidSignal: malformed input (nothing changes).
            QuotaExceeded: a new token or edge would break a quota (nothing changes).
        """
        t0 = time.perf_counter_ns()
        cdna = self.cdna
        event_type = self.guardian.check_event_type(event_type)
        x, _ = self.guardian.check_vectors(vector, cdna, batch=False)
        pri = self.guardian.check_priorities(priority, 1, batch=False)
        kind = _kind_codes(meta.pop("kind", None), 1)
        if self.device.type != "cpu":
            batch = self._ingest(x, pri, kind, t0)
            self._log_emit(event_type, x, pri, kind, meta, batch)
            self._publish(event_type, batch, meta)
            return batch[0]
        stores = Stores(self.token_state, self.edge_state, self.index, self.guardian)
        result = ingest_one(stores, self.cdna, x[0], int(pri[0]), int(kind[0]), self.tick, t0)
        self.tick += 1
        c = self._counters
        c["signals"] += 1
        c["novel"] += result.is_novel
        c["calls"] += 1
        c["emit_ns"] += time.perf_counter_ns() - t0
        self._log_emit(event_type, x, pri, kind, meta, result)
        if self.bus.has_subscribers("signals", event_type):
            data = result.to_dict()
            if meta:
                data["meta"] = dict(meta)
            self.bus.publish("signals", event_type, data)
        return result

    def emit_batch(
        self,
        event_types: str | Sequence[str],
        vectors: Any,
        priorities: int | Sequence[int] | np.ndarray | torch.Tensor = 128,
        *,
        kinds: str | int | Sequence[str | int] | None = None,
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
        kind = _kind_codes(kinds, b)
        batch = self._ingest(x, pri, kind, t0)
        self._log_emit(types, x, pri, kind, meta, batch)
        self._publish(types, batch, meta)
        return batch

    def add_tokens(
        self, vectors: Any, priorities: int | Sequence[int] = 128, *, kinds: Any = None
    ) -> np.ndarray:
        """Insert tokens directly at ``vectors [B, 8]`` without novelty checks or edges (e.g. to seed an
        engine with a data set). Returns their ids ``[B]``."""
        cdna = self.cdna
        x, _ = self.guardian.check_vectors(vectors, cdna, batch=True)
        b = x.shape[0]
        pri = self.guardian.check_priorities(priorities, b, batch=True)
        kind = _kind_codes(kinds, b)
        bytes_after, alloc = planned_bytes(self.token_state, self.edge_state, b, 0, cdna.max_degree)
        self.guardian.check_growth(
            cdna,
            tokens_after=self.token_state.n_alive + b,
            edges_after=self.edge_state.n_alive,
            bytes_after=bytes_after,
            alloc_bytes=alloc,
            device=self.device,
        )
        slots = self.token_state.append(
            b,
            tick=self.tick,
            pos=x,
            mass=np.clip(0.5 + cdna.mass_gain * pri / 255.0, cdna.mass_min, cdna.mass_max).astype(np.float32),
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

    def _ingest(self, x: np.ndarray, pri: np.ndarray, kind: np.ndarray, t0: int) -> BatchResult:
        stores = Stores(self.token_state, self.edge_state, self.index, self.guardian)
        batch = ingest_batch(stores, self.cdna, x, pri, kind, self.tick)
        b = len(batch)
        self.tick += b
        elapsed = time.perf_counter_ns() - t0
        batch.processing_time_us = elapsed / 1e3
        c = self._counters
        c["signals"] += b
        c["novel"] += int(batch.is_novel.sum())
        c["calls"] += 1
        c["emit_ns"] += elapsed
        return batch

    def _publish(self, types: str | list[str], batch: BatchResult, meta: Mapping[str, Any]) -> None:
        bus = self.bus
        if isinstance(types, str):
            if not bus.has_subscribers("signals", types):
                return
            rows = range(len(batch))
            typ = [types] * len(batch)
        else:
            rows = [i for i, t in enumerate(types) if bus.has_subscribers("signals", t)]
            typ = types
        for i in rows:
            bus.publish("signals", typ[i], _payload(batch, i, meta))

    # --- inspection ---------------------------------------------------------------------------------
    def tokens(self) -> pd.DataFrame:
        """Alive tokens, one row each: id, kind, level, parent (id, -1 none), mass, radius, strength, hits,
        one column per axis, activation, born, seen."""
        return tokens_frame(self.token_state)

    def edges(self) -> pd.DataFrame:
        """Alive edges: id, source and target (token ids), kind, relation group, weight, rest, confidence,
        mutability, evidence, updated (tick)."""
        return edges_frame(self.edge_state, self.token_state)

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

    def token(self, token_id: int) -> dict[str, Any]:
        """One token as a dict (raises :class:`UnknownToken`)."""
        slot = int(self.token_state.slots_of([token_id])[0])
        if slot < 0:
            raise UnknownToken(token_id)
        t = self.token_state
        pos = t.gather("pos", np.array([slot]))[0]
        return {
            "id": int(token_id),
            "kind": ENTITY_KINDS[int(t.gather("kind", np.array([slot]))[0])],
            "level": int(t.gather("level", np.array([slot]))[0]),
            "mass": float(t.gather("mass", np.array([slot]))[0]),
            "hits": int(t.gather("hits", np.array([slot]))[0]),
            "position": dict(zip(AXES, pos.tolist())),
        }

    # --- queries ------------------------------------------------------------------------------------
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
        return run_query(text, self.token_state, self.edge_state, self.cdna.axis_scale, encoder=encoder)

    # --- events -------------------------------------------------------------------------------------
    def subscribe(
        self, spec: str | Mapping[str, Any] = "*", callback: Callable[..., Any] | None = None, **kwargs: Any
    ) -> Subscription:
        """Subscribe to the engine's events (a type pattern like ``"signal.input.*"`` or a filter dict);
        without a callback the subscription is an async iterator. See :class:`~neurograph.events.EventBus`."""
        return self.bus.subscribe(spec, callback, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Engine(device={str(self.device)!r}, tokens={self.token_state.n_alive}, "
            f"edges={self.edge_state.n_alive}, "
            f"tick={self.tick}, cdna={self.cdna.name!r} v{self.cdna.version})"
        )


SignalSystem = Engine


def _payload(batch: BatchResult, i: int, meta: Mapping[str, Any]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        data = batch[i].to_dict()
        if meta:
            data["meta"] = dict(meta)
        return data

    return build


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def _resolve_cdna(cdna: CDNA | str | Mapping[str, Any] | None) -> CDNA:
    if cdna is None:
        return CDNA()
    if isinstance(cdna, CDNA):
        return cdna
    if isinstance(cdna, str):
        return CDNA.profile(cdna)
    if isinstance(cdna, Mapping):
        return CDNA.from_dict(cdna)
    raise TypeError(f"cdna must be a CDNA, a profile name or a mapping, got {type(cdna).__name__}")


_KIND_CODE = {name: i for i, name in enumerate(ENTITY_KINDS)}
_DEFAULT_KIND = _KIND_CODE["concept"]


def _kind_codes(kinds: Any, n: int) -> np.ndarray:
    """Entity kind codes ``[n]`` from a name, a code, or one per row."""
    if kinds is None:
        return np.full(n, _DEFAULT_KIND, np.int16)
    if isinstance(kinds, (str, int, np.integer)):
        return np.full(n, _kind_code(kinds, None), np.int16)
    seq = list(kinds)
    if len(seq) != n:
        raise InvalidSignal("kinds", len(seq), f"must be one kind or {n} kinds")
    return np.array([_kind_code(k, i) for i, k in enumerate(seq)], np.int16)


def _kind_code(kind: Any, index: int | None) -> int:
    if isinstance(kind, str):
        if kind not in _KIND_CODE:
            raise InvalidSignal("kind", kind, f"must be one of {list(ENTITY_KINDS)}", index)
        return _KIND_CODE[kind]
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) and 0 <= kind < len(ENTITY_KINDS):
        return int(kind)
    raise InvalidSignal(
        "kind", kind, f"must be an entity kind name or a code 0..{len(ENTITY_KINDS) - 1}", index
    )
