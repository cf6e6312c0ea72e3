"""The signal pipeline: gateway -> engine -> actions, for one message or a batch.

``SignalPipeline(engine, gateway, actions)`` wires the three L3/L2 pieces together (the gateway and the
controller publish on the engine's bus unless they already have one)::

    async with ng.SignalPipeline(eng, gateway=ng.Gateway(), actions=ng.ActionController()) as pipe:
        out = await pipe.process_text("hello", user_id=7, chat_id=1)
        out["action_results"][0]["result"]["response"]   # "I sense something new! ..."

``await process_text(text, user_id=, chat_id=, priority=200, metadata=)`` returns a dict:

``signal_event``       the gateway's :class:`~neurograph.gateway.SignalEvent` as a dict
``processing_result``  the engine's :class:`~neurograph.emit.results.EmitResult` as a dict
``action_results``     the records of the actions the rules selected (hot: done; cold: ``"queued"``)
``stats``              ``total_time_ms, gateway_time_ms, core_time_ms, action_time_ms``

``await process_batch(texts, ...)`` encodes the batch vectorised (``Gateway.push_texts``), emits it with
one ``Engine.emit_batch`` (sequential semantics, DESIGN §3) and runs each selected action once over its
rows: a :class:`PipelineBatch`, whose ``batch[i]`` is the same dict as ``process_text`` (made on access;
``stats`` there is the batch's time shared equally) and whose ``stats`` are the batch totals.
``process_signal(event)`` and ``process_numeric(value, sensor=...)`` take other readings the same way.
``shutdown()`` waits for the cold actions; :meth:`SignalPipeline.stats` sums the time spent so far.

The engine's work never blocks the event loop (DESIGN §11): the encoding (the gateway's ``push_*``: the
semantic encoder takes milliseconds a text) and the emit of every message or batch run together, in one
call on the engine's own worker thread (:meth:`Engine.call <neurograph.engine.Engine.call>`), while the
loop keeps serving other tasks (an ``emit`` with ``durability="full"`` waits for an fsync).
``offload=False`` calls the engine directly on the loop instead: a few tens of microseconds less per
message, for scripts where nothing else runs on the loop.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from neurograph.actions import ActionController, BatchActions
from neurograph.emit.results import BatchResult
from neurograph.engine import Engine
from neurograph.gateway import Gateway, SignalBatch, SignalEvent

__all__ = ["STATS_KEYS", "PipelineBatch", "SignalPipeline"]

STATS_KEYS = ("total_time_ms", "gateway_time_ms", "core_time_ms", "action_time_ms")


def _payload(reading: Any, user_id: Any, chat_id: Any) -> Any:
    """What the engine keeps of a reading: a text (with the user and chat ids when given), a number or a
    list of numbers; ``None`` for anything else (vectors are the token's position already)."""
    if isinstance(reading, str):
        if user_id is None and chat_id is None:
            return reading
        return {"text": reading, "user_id": _plain(user_id), "chat_id": _plain(chat_id)}
    if isinstance(reading, (int, float)) and not isinstance(reading, bool):
        return reading
    return None


def _plain(value: Any) -> Any:
    """An id as JSON takes it (numbers and strings as they are, anything else as its str)."""
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def _stats(t0: int, t1: int, t2: int, t3: int) -> dict[str, float]:
    return {
        "total_time_ms": (t3 - t0) / 1e6,
        "gateway_time_ms": (t1 - t0) / 1e6,
        "core_time_ms": (t2 - t1) / 1e6,
        "action_time_ms": (t3 - t2) / 1e6,
    }


class PipelineBatch(Sequence[dict[str, Any]]):
    """What :meth:`SignalPipeline.process_batch` did: ``signals`` (a ``SignalBatch``), ``results`` (a
    ``BatchResult``), ``actions`` (:class:`~neurograph.actions.BatchActions`) and ``stats`` (batch totals
    in ms, plus ``messages``); ``batch[i]`` is row ``i`` as :meth:`SignalPipeline.process_text` returns it."""

    def __init__(
        self, signals: SignalBatch, results: BatchResult, actions: BatchActions, stats: dict[str, Any]
    ):
        self.signals, self.results, self.actions, self.stats = signals, results, actions, stats

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a batch of {n}")
        i %= n
        share = {key: self.stats[key] / n for key in STATS_KEYS}
        return {
            "signal_event": self.signals[i].to_dict(),
            "processing_result": self.results[i].to_dict(),
            "action_results": self.actions.row(i),
            "stats": share,
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    @property
    def responses(self) -> list[str | None]:
        """The ``text_response`` reply of each row (``None`` where there is none)."""
        out: list[str | None] = [None] * len(self)
        for run in self.actions.runs:
            if run.action == "text_response" and run.status == "completed" and run.output is not None:
                for j, i in enumerate(run.rows.tolist()):
                    out[i] = run.output[j]["response"]
        return out

    def __repr__(self) -> str:
        return (
            f"PipelineBatch(rows={len(self)}, novel={int(self.results.is_novel.sum())}, "
            f"total_time_ms={self.stats['total_time_ms']:.3f})"
        )


class SignalPipeline:
    """Gateway -> engine -> actions (module docstring).

    Args:
        engine: the :class:`~neurograph.engine.Engine` signals go to.
        gateway: a :class:`~neurograph.gateway.Gateway` (a new one with the built-in sensors by default).
        actions: an :class:`~neurograph.actions.ActionController` (default rules and actions by default).
    """

    def __init__(
        self,
        engine: Engine,
        gateway: Gateway | None = None,
        actions: ActionController | None = None,
        *,
        offload: bool = True,
    ) -> None:
        self.engine = engine
        self.offload = offload  # run the engine's work on its worker thread (module docstring)
        self.gateway = gateway if gateway is not None else Gateway()
        self.actions = actions if actions is not None else ActionController()
        if self.gateway.bus is None:
            self.gateway.attach(engine.bus)
        if self.actions.bus is None:
            self.actions.attach(engine.bus)
        self.totals = dict.fromkeys(("messages", "batches", *STATS_KEYS), 0.0)

    async def process_text(
        self,
        text: str,
        user_id: Any = None,
        chat_id: Any = None,
        priority: int = 200,
        metadata: Mapping[str, Any] | None = None,
        *,
        sensor: str = "builtin.text_chat",
        tags: Sequence[str] = (),
        label: str | None = None,
    ) -> dict[str, Any]:
        """One text through gateway, engine and actions (module docstring for the result).

        The engine keeps the text as the signal's payload (``{"text", "user_id", "chat_id"}`` when either
        id is given; see :mod:`neurograph.memory`), so fields can be described by their messages;
        ``label`` (else the sensor's) labels the signal.

        Raises:
            InvalidSignal: a bad sensor, text or priority (the gateway), or a signal the Guardian refuses.
            QuotaExceeded: the engine's quotas (nothing changed in the engine).
        """
        t0 = time.perf_counter_ns()
        push = functools.partial(
            self.gateway.push_text,
            text,
            sensor=sensor,
            priority=priority,
            tags=tags,
            metadata=metadata,
            user_id=user_id,
            chat_id=chat_id,
            label=label,
        )
        return await self._process(push, t0)

    async def process_numeric(
        self,
        value: Any,
        *,
        sensor: str = "builtin.system_monitor",
        priority: int | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """A numeric reading through the pipeline (options as ``Gateway.push_numeric``)."""
        t0 = time.perf_counter_ns()
        push = functools.partial(
            self.gateway.push_numeric, value, sensor=sensor, priority=priority, **options
        )
        return await self._process(push, t0)

    async def process_signal(self, signal: SignalEvent) -> dict[str, Any]:
        """A signal event made by the gateway (``push_*``) through engine and actions."""
        return await self._process(lambda: signal, time.perf_counter_ns())

    async def _process(self, push: Callable[[], SignalEvent], t0: int) -> dict[str, Any]:
        """Encode (``push``) and emit in one call on the engine's thread: an encoder's work (MiniLM takes
        milliseconds a text) never holds the event loop either."""

        def encode_and_emit() -> tuple[SignalEvent, int, Any]:
            signal = push()
            t1 = time.perf_counter_ns()
            meta: dict[str, Any] = {"kind": signal.kind, "sensor": signal.sensor}
            if signal.user_id is not None or signal.chat_id is not None:
                meta.update(user_id=signal.user_id, chat_id=signal.chat_id)
            meta.update(label=signal.label, payload=_payload(signal.payload, signal.user_id, signal.chat_id))
            return signal, t1, self.engine.emit(signal.event_type, signal.vector, signal.priority, **meta)

        signal, t1, result = await self._engine(encode_and_emit)
        t2 = time.perf_counter_ns()
        action_results = await self.actions.dispatch(signal, result)
        t3 = time.perf_counter_ns()
        stats = _stats(t0, t1, t2, t3)
        self._count(1, stats)
        return {
            "signal_event": signal.to_dict(),
            "processing_result": result.to_dict(),
            "action_results": action_results,
            "stats": stats,
        }

    async def _engine(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run engine work on its worker thread (or on the loop with ``offload=False``)."""
        if self.offload:
            return await self.engine.call(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def process_batch(
        self,
        texts: Sequence[str],
        user_id: Any = None,
        chat_id: Any = None,
        priority: int | Sequence[int] = 200,
        metadata: Mapping[str, Any] | None = None,
        *,
        sensor: str = "builtin.text_chat",
        tags: Sequence[str] = (),
        labels: str | Sequence[str | None] | None = None,
    ) -> PipelineBatch:
        """``B`` texts through the pipeline at once (module docstring); ``priority`` may be ``B`` ints,
        ``labels`` one label or ``B``. The texts are kept as payloads, as in :meth:`process_text`."""
        t0 = time.perf_counter_ns()
        push = functools.partial(
            self.gateway.push_texts,
            texts,
            sensor=sensor,
            priority=priority,
            tags=tags,
            metadata=metadata,
            user_id=user_id,
            chat_id=chat_id,
            labels=labels,
        )
        return await self._batch(push, t0)

    async def process_signals(self, signals: SignalBatch, *, t0: int | None = None) -> PipelineBatch:
        """A :class:`~neurograph.gateway.SignalBatch` (``Gateway.push_*s``) through engine and actions."""
        return await self._batch(lambda: signals, time.perf_counter_ns() if t0 is None else t0)

    async def _batch(self, push: Callable[[], SignalBatch], t0: int) -> PipelineBatch:
        """Encode (``push``) and emit a batch in one call on the engine's thread (as :meth:`_process`)."""

        def encode_and_emit() -> tuple[SignalBatch, int, BatchResult]:
            signals = push()
            t1 = time.perf_counter_ns()
            results = self.engine.emit_batch(
                signals.event_type,
                signals.vectors,
                signals.priorities,
                kinds=signals.kind,
                labels=signals.labels,
                payloads=[_payload(p, signals.user_id, signals.chat_id) for p in signals.payloads],
                sensor=signals.sensor,
            )
            return signals, t1, results

        signals, t1, results = await self._engine(encode_and_emit)
        t2 = time.perf_counter_ns()
        actions = await self.actions.dispatch_batch(signals, results)
        t3 = time.perf_counter_ns()
        stats: dict[str, Any] = _stats(t0, t1, t2, t3)
        self._count(len(signals), stats)
        self.totals["batches"] += 1
        stats["messages"] = len(signals)
        return PipelineBatch(signals, results, actions, stats)

    def _count(self, n: int, stats: Mapping[str, float]) -> None:
        totals = self.totals
        totals["messages"] += n
        for key in STATS_KEYS:
            totals[key] += stats[key]

    def stats(self) -> dict[str, Any]:
        """Messages and batches so far, the time spent per stage (ms), and the mean per message."""
        t = dict(self.totals)
        n = t["messages"]
        t["messages"], t["batches"] = int(n), int(t["batches"])
        t["messages_per_s"] = n / (t["total_time_ms"] / 1e3) if t["total_time_ms"] else 0.0
        t["pending_cold_actions"] = self.actions.pending
        return t

    async def join(self) -> None:
        """Wait for the queued cold actions."""
        await self.actions.join()

    async def shutdown(self) -> None:
        """Wait for the queued cold actions and stop the controller's background task."""
        await self.actions.shutdown()

    async def __aenter__(self) -> SignalPipeline:
        """Load the encoders' models now (``Gateway.warm``; about a second for MiniLM the first time in a
        process, on the calling thread): a model loaded by the first message, on the engine's thread,
        would hold the GIL through its imports and stall the event loop for 0.2-0.8 s at a time."""
        self.gateway.warm()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        return (
            f"SignalPipeline(engine={self.engine!r}, gateway={self.gateway!r}, "
            f"messages={int(self.totals['messages'])}, pending_cold_actions={self.actions.pending})"
        )
