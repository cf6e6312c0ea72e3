"""The action controller: runs the actions that rules select for each processed signal.

``await controller.dispatch(signal, result)`` evaluates the rules (:mod:`neurograph.actions.rules`) in
order of ``priority_boost``, then

- **hot path**: awaits each selected hot action in turn and returns their records;
- **cold path**: queues the signal's cold actions (after its hot ones ran) and returns a ``"queued"``
  record for each; **one** background task per controller drains the queue in order (a sync action is
  called inline, an async one awaited; it yields to the loop every 1024 queued items). When the queue
  holds ``cold_maxsize`` items, ``dispatch`` waits for room (back-pressure, nothing is dropped).

``await controller.join()`` waits until the queue is empty; ``await controller.shutdown()`` drains it
and stops the task (a later dispatch starts a new one). ``dispatch_batch(signals, results)`` does the
same for a batch: each rule selects rows (vectorised where it can), each selected action runs once over
those rows (its ``batch_fn``) and :class:`BatchActions` gives the per-row records lazily.

A record is ``{"action", "rule", "path", "priority", "status", "result", "error", "time_ms"}`` with
``status`` ``completed``, ``failed`` (``error`` says why; the exception is logged, never raised) or
``queued``. Every completed or failed record is published on the bus's ``actions`` channel as
``action.<name>.completed`` / ``action.<name>.failed`` (a batch run: one event with ``rows``), when
someone listens; ``recent`` keeps the latest cold records.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurograph.actions.builtins import MetricsAction, builtin_actions, default_rules
from neurograph.actions.registry import Action, ActionContext, ActionError, ActionRegistry, BatchContext
from neurograph.actions.rules import Rule, order

__all__ = ["ActionController", "BatchActions", "BatchRun"]

_log = logging.getLogger("neurograph.actions")
_YIELD_EVERY = 1024  # queued items the drain task runs before it lets the loop breathe


class _Failed:
    """A per-row failure inside a batch run's outputs."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True, eq=False)
class BatchRun:
    """One action run over the rows of a batch a rule selected.

    Shapes:
        rows: ``[R]`` increasing row indices; output: ``R`` per-row results, a mapping for all, or None.
    """

    action: str
    rule: str
    path: str
    boost: int
    rows: np.ndarray
    output: Any
    status: str
    error: str | None
    time_ms: float

    def position(self, i: int) -> int:
        """Where row ``i`` sits in ``rows`` (-1 when the rule did not select it)."""
        j = int(np.searchsorted(self.rows, i))
        return j if j < self.rows.size and self.rows[j] == i else -1

    def summary(self) -> dict[str, Any]:
        out = self.output
        return {
            "action": self.action,
            "rule": self.rule,
            "path": self.path,
            "rows": int(self.rows.size),
            "status": self.status,
            "result": out if isinstance(out, Mapping) else None,
            "error": self.error,
            "time_ms": self.time_ms,
        }


class BatchActions:
    """The actions of a batch: ``runs`` (hot, done) and ``queued`` (cold); ``row(i)`` gives row ``i``'s
    records as ``dispatch`` would (the run time is shared equally among its rows)."""

    def __init__(self, n: int, priorities: np.ndarray, runs: list[BatchRun], queued: list[BatchRun]) -> None:
        self.n, self.priorities, self.runs, self.queued = n, priorities, runs, queued

    def row(self, i: int) -> list[dict[str, Any]]:
        records = []
        for run in (*self.runs, *self.queued):
            j = run.position(i)
            if j < 0:
                continue
            out, status, error = run.output, run.status, run.error
            if not (out is None or isinstance(out, Mapping)):
                out = out[j]
                if isinstance(out, _Failed):
                    out, status, error = None, "failed", out.error
            records.append(
                {
                    "action": run.action,
                    "rule": run.rule,
                    "path": run.path,
                    "priority": min(max(int(self.priorities[i]) + run.boost, 0), 255),
                    "status": status,
                    "result": out if status != "queued" else None,
                    "error": error,
                    "time_ms": run.time_ms / max(run.rows.size, 1),
                }
            )
        return records

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        hot = ", ".join(f"{r.action}x{r.rows.size}" for r in self.runs)
        cold = ", ".join(f"{r.action}x{r.rows.size}" for r in self.queued)
        return f"BatchActions(rows={self.n}, hot=[{hot}], queued=[{cold}])"


class ActionController:
    """Rules -> actions, hot and cold (module docstring).

    Args:
        rules: the rules (default: :func:`~neurograph.actions.builtins.default_rules`).
        actions: the actions (default: :func:`~neurograph.actions.builtins.builtin_actions`).
        bus: where records are published (``attach`` sets it later; the pipeline attaches the engine's).
        cold_maxsize: queued signals (or batches) before ``dispatch`` waits for the background task; a
            short queue also keeps queued signals from reaching the garbage collector's oldest
            generation (whose full collections cost ~0.1-0.5 s with torch loaded).
        keep: how many of the latest cold records ``recent`` keeps.
    """

    def __init__(
        self,
        rules: Iterable[Rule] | None = None,
        actions: Iterable[Action] | None = None,
        *,
        bus: Any = None,
        cold_maxsize: int = 128,
        keep: int = 1000,
    ) -> None:
        if isinstance(cold_maxsize, bool) or not isinstance(cold_maxsize, int) or cold_maxsize < 1:
            raise ActionError("cold_maxsize", cold_maxsize, "must be an integer >= 1")
        self.registry = ActionRegistry(builtin_actions() if actions is None else list(actions))
        self._rules: list[Rule] = []
        self._plan: tuple[Rule, ...] = ()
        for rule in default_rules() if rules is None else rules:
            self.add_rule(rule)
        self.bus = bus
        self.cold_maxsize = cold_maxsize
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.counters = {"dispatched": 0, "hot": 0, "cold": 0, "failed": 0}
        self._queue: deque[tuple[Any, list[Any]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._closing = False
        self._running = False  # the drain task is running an item it popped
        self._types: dict[tuple[str, str], str] = {}  # (action, status) -> event type

    # --- configuration -------------------------------------------------------------------------------
    def attach(self, bus: Any) -> None:
        """Publish records on ``bus`` from now on."""
        self.bus = bus

    def register(self, action: Action | str, fn: Any = None, **options: Any) -> Action:
        """Register an action (see :meth:`ActionRegistry.register`)."""
        return self.registry.register(action, fn, **options)

    def add_rule(self, rule: Rule | str, actions: Sequence[str] | str = (), **fields: Any) -> Rule:
        """Add a :class:`Rule` (or build one: ``add_rule("alert", ["log"], condition=..., path="cold")``).

        Raises:
            ActionError: a rule name already used, or an action that is not registered.
        """
        if isinstance(rule, str):
            rule = Rule(rule, actions, **fields)
        elif not isinstance(rule, Rule):
            raise ActionError("rule", rule, "must be a Rule or a rule name")
        if any(r.name == rule.name for r in self._rules):
            raise ActionError("rule", rule.name, "is already used by another rule")
        for name in rule.actions:
            self.registry[name]  # raises ActionError naming an unknown action
        self._rules.append(rule)
        self._plan = order(self._rules)
        return rule

    def remove_rule(self, name: str) -> Rule:
        """Remove and return the rule ``name``."""
        for i, rule in enumerate(self._rules):
            if rule.name == name:
                del self._rules[i]
                self._plan = order(self._rules)
                return rule
        raise ActionError("rule", name, f"no such rule; rules: {[r.name for r in self._rules]}")

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules in the order they were added."""
        return tuple(self._rules)

    @property
    def metrics(self) -> dict[str, Any]:
        """The built-in metrics action's counters (empty when it is not registered)."""
        action = self.registry._actions.get("metrics")
        fn = action.fn if action is not None else None
        return fn.snapshot() if isinstance(fn, MetricsAction) else {}

    # --- one signal ---------------------------------------------------------------------------------
    async def dispatch(self, signal: Any, result: Any) -> list[dict[str, Any]]:
        """Run the hot actions the rules select for one signal, queue the cold ones; return the records."""
        ctx = ActionContext(signal, result, self.bus)
        records: list[dict[str, Any]] = []
        cold: list[tuple[str, str, int]] | None = None
        base = signal.priority
        run = self._run
        for rule in self._plan:
            try:
                if not rule.match_fn(ctx):
                    continue
            except Exception:
                _log.exception("condition of rule %r failed", rule.name)
                continue
            pri = base + rule.priority_boost
            if not 0 <= pri <= 255:
                pri = min(max(pri, 0), 255)
            if rule.path == "hot":
                for name in rule.actions:
                    record = run(ctx, rule.name, name, pri, "hot")
                    if record.__class__ is not dict:  # an async action: await it
                        record = await record
                    records.append(record)
            else:
                if cold is None:
                    cold = []
                for name in rule.actions:
                    cold.append((rule.name, name, pri))
                    records.append(_queued(rule.name, name, pri))
        self.counters["dispatched"] += 1
        if cold is not None:
            self._enqueue(ctx, cold)
            if len(self._queue) >= self.cold_maxsize:
                await self._make_room()
        return records

    def _run(self, ctx: ActionContext, rule: str, name: str, pri: int, path: str) -> Any:
        """One action for one signal: its record, or (an async action) a coroutine giving the record."""
        t0 = time.perf_counter_ns()
        action = self.registry._actions.get(name)
        try:
            if action is None:
                self.registry[name]  # raises ActionError naming the unknown action
            result = action.fn(ctx)  # type: ignore[union-attr]
        except Exception as exc:
            _log.exception("action %r (rule %r) failed", name, rule)
            return self._record(name, rule, path, pri, None, exc, t0)
        if action.is_async or (  # type: ignore[union-attr]
            result is not None and result.__class__ is not dict and inspect.isawaitable(result)
        ):
            return self._finish(result, name, rule, path, pri, t0)
        return self._record(name, rule, path, pri, result, None, t0)

    async def _finish(
        self, awaitable: Any, name: str, rule: str, path: str, pri: int, t0: int
    ) -> dict[str, Any]:
        try:
            result = await awaitable
        except Exception as exc:
            _log.exception("action %r (rule %r) failed", name, rule)
            return self._record(name, rule, path, pri, None, exc, t0)
        return self._record(name, rule, path, pri, result, None, t0)

    def _record(
        self, name: str, rule: str, path: str, pri: int, result: Any, exc: Exception | None, t0: int
    ) -> dict[str, Any]:
        counters = self.counters
        counters[path] += 1
        if exc is None:
            status, error = "completed", None
        else:
            status, error = "failed", _error(exc)
            counters["failed"] += 1
        record = {
            "action": name,
            "rule": rule,
            "path": path,
            "priority": pri,
            "status": status,
            "result": result,
            "error": error,
            "time_ms": (time.perf_counter_ns() - t0) / 1e6,
        }
        if self.bus is not None:
            self._publish(name, status, record)
        return record

    def _publish(self, name: str, status: str, record: Mapping[str, Any]) -> None:
        bus = self.bus
        event_type = self._types.get((name, status))
        if event_type is None:
            event_type = self._types[(name, status)] = f"action.{name}.{status}"
        if bus.has_subscribers("actions", event_type):
            bus.publish("actions", event_type, record)

    # --- a batch ------------------------------------------------------------------------------------
    async def dispatch_batch(self, signals: Any, results: Any) -> BatchActions:
        """Run the rules over a batch (``SignalBatch``, ``BatchResult``): hot runs awaited, cold queued."""
        n = len(signals)
        runs: list[BatchRun] = []
        queued: list[BatchRun] = []
        for rule in self._plan:
            try:
                rows = rule.rows(BatchContext(signals, results, np.arange(0), self.bus))
            except Exception:
                _log.exception("condition of rule %r failed on a batch", rule.name)
                continue
            if rows.size == 0:
                continue
            bctx = BatchContext(signals, results, rows.astype(np.int64, copy=False), self.bus)
            for name in rule.actions:
                if rule.path == "hot":
                    runs.append(await self._run_batch(bctx, rule, name, "hot"))
                else:
                    queued.append(
                        BatchRun(
                            name, rule.name, "cold", rule.priority_boost, bctx.rows, None, "queued", None, 0.0
                        )
                    )
        self.counters["dispatched"] += n
        if queued:
            self._enqueue(None, [(signals, results, run) for run in queued])
            await self._make_room()
        return BatchActions(n, np.asarray(signals.priorities), runs, queued)

    async def _run_batch(self, bctx: BatchContext, rule: Rule, name: str, path: str) -> BatchRun:
        t0 = time.perf_counter_ns()
        error = None
        try:
            action = self.registry[name]
            if action.batch_fn is not None:
                output = action.batch_fn(bctx)
                if action.batch_is_async or inspect.isawaitable(output):
                    output = await output
            else:
                output = [await self._row(action, bctx.context(int(i))) for i in bctx.rows]
            status = "completed"
        except Exception as exc:
            _log.exception("action %r (rule %r) failed on a batch", name, rule.name)
            output, status, error = None, "failed", _error(exc)
            self.counters["failed"] += 1
        self.counters[path] += int(bctx.rows.size)
        ms = (time.perf_counter_ns() - t0) / 1e6
        run = BatchRun(name, rule.name, path, rule.priority_boost, bctx.rows, output, status, error, ms)
        if self.bus is not None:
            self._publish(name, status, run.summary())
        return run

    async def _row(self, action: Action, ctx: ActionContext) -> Any:
        try:
            result = action.fn(ctx)
            return await result if action.is_async or inspect.isawaitable(result) else result
        except Exception as exc:
            _log.exception("action %r failed on a batch row", action.name)
            return _Failed(_error(exc))

    # --- the cold path ------------------------------------------------------------------------------
    def _enqueue(self, ctx: ActionContext | None, steps: list[Any]) -> None:
        self._ensure_task()
        self._queue.append((ctx, steps))
        self._idle.clear()  # type: ignore[union-attr]
        wake = self._wake
        if not wake.is_set():  # type: ignore[union-attr]
            wake.set()  # type: ignore[union-attr]

    async def _make_room(self) -> None:
        """Back-pressure: let the drain task work until the queue is below ``cold_maxsize``."""
        while len(self._queue) >= self.cold_maxsize:
            await asyncio.sleep(0)
            self._ensure_task()

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._wake, self._idle = loop, asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._drain(), name="neurograph-cold-actions")

    async def _drain(self) -> None:
        wake, idle, queue = self._wake, self._idle, self._queue
        done = 0
        while True:
            while queue:
                ctx, steps = queue.popleft()
                self._running = True
                try:
                    if ctx is None:
                        for signals, results, run in steps:
                            await self._cold_batch(signals, results, run)
                    else:
                        for rule, name, pri in steps:
                            record = self._run(ctx, rule, name, pri, "cold")
                            if record.__class__ is not dict:  # an async action: await it
                                record = await record
                            self.recent.append(record)
                finally:
                    self._running = False
                done += 1
                if done % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            idle.set()  # type: ignore[union-attr]
            if self._closing:
                return
            wake.clear()  # type: ignore[union-attr]
            if not queue:
                await wake.wait()  # type: ignore[union-attr]

    async def _cold_batch(self, signals: Any, results: Any, queued: BatchRun) -> None:
        rule = next((r for r in self._rules if r.name == queued.rule), None)
        if rule is None:  # the rule was removed meanwhile: run its action all the same
            rule = Rule(queued.rule, (queued.action,), path="cold", priority_boost=queued.boost)
        run = await self._run_batch(
            BatchContext(signals, results, queued.rows, self.bus), rule, queued.action, "cold"
        )
        self.recent.append(run.summary())

    @property
    def pending(self) -> int:
        """Queued cold items (signals or batches) not yet run."""
        return len(self._queue)

    async def join(self) -> None:
        """Wait until every queued cold action has run."""
        while self._queue or self._running:
            self._ensure_task()
            await self._idle.wait()  # type: ignore[union-attr]

    async def shutdown(self) -> None:
        """Drain the cold queue, then stop the background task (idempotent)."""
        if self._queue:
            self._ensure_task()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            self._closing = True
            try:
                self._wake.set()  # type: ignore[union-attr]
                await task
            finally:
                self._closing = False
        self._task = None

    def stats(self) -> dict[str, Any]:
        """Counters (dispatched signals, hot and cold action runs, failures) and the queue length."""
        return {
            **self.counters,
            "pending": len(self._queue),
            "rules": len(self._rules),
            "actions": len(self.registry),
        }

    def __repr__(self) -> str:
        rules = ", ".join(f"{r.name}->{'/'.join(r.actions)} ({r.path})" for r in self._plan)
        return f"ActionController(rules=[{rules}], pending={len(self._queue)}, bus={self.bus is not None})"


def _queued(rule: str, name: str, pri: int) -> dict[str, Any]:
    return {
        "action": name,
        "rule": rule,
        "path": "cold",
        "priority": pri,
        "status": "queued",
        "result": None,
        "error": None,
        "time_ms": 0.0,
    }
