"""The event bus: channels, a taxonomy of dotted event types, filters and subscribers.

An :class:`Event` is a **channel** (``signals, actions, metrics, logs, status, connections``), a dotted
**event type**, a ``timestamp`` (``time.time()``) and a ``data`` mapping (not copied: read-only). The
:class:`EventTypeRegistry` starts with the 41 leaves of the taxonomy of DESIGN §7 (:data:`TAXONOMY`;
prefixes such as ``signal.input`` are not types) and registers a type on its first publish.

**Patterns**: ``"*"`` matches every type, ``"a.b.*"`` every type *under* ``a.b.`` at any depth
(``signal.input.*`` matches ``signal.input.external.text.chat``, not ``signal.inputs.x`` nor
``signal.input``), anything else one type. They are matched on publish: later types are caught too.

**Filters**: MongoDB-style dicts over ``{"channel", "event_type", "timestamp", "data": {...}}``. Keys are
dotted fields (``"data.is_novel"``, ``"data.neighbors.0.token_id"``: digits index lists) or ``$and``,
``$or`` (lists of filters), ``$not`` (a filter), all ANDed. A field maps to a value (equality) or ANDed
operators: ``$eq $ne $gt $gte $lt $lte $in $nin``; ``$contains`` (substring of a string, member of a
list/tuple/set, key of a mapping); ``$regex`` (:func:`re.search`); ``$wildcard`` (a dot-aware pattern
when it is one, else :func:`fnmatch.fnmatchcase`: ``*``, ``?``, ``[...]``); ``$not`` of operators. A
filter is compiled at subscription; unknown operators and fields raise ``InvalidQuery`` naming them. Keys
under ``data.`` cannot be known in advance: a **condition on a missing field is false** whatever its
operator (``$ne``, ``$nin`` and a field's ``$not`` too, unlike MongoDB; a top-level ``$not`` selects the
events lacking a field), as is a comparison of incomparable values (``"a" > 1``): no filter raises.

**Subscribers**: callbacks run in the publisher's thread; an ``async def`` callback's coroutine becomes a
task of the loop running there, else :func:`asyncio.run` runs it to its end. A failing callback is logged
(``neurograph.events``) and counted in ``bus.errors``: it never reaches the publisher nor the others.
Without a callback a :class:`Subscription` is a bounded async iterator keeping the newest ``maxsize``
events (``dropped`` counts the others), woken by a publish from any thread. The routes of each
``(channel, event_type)`` are cached: a publish nobody hears costs about a microsecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import operator
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache, partial
from types import MappingProxyType
from typing import Any

from neurograph.errors import InvalidQuery

__all__ = ["CHANNELS", "TAXONOMY", "Event", "EventBus", "EventTypeRegistry", "Filter", "Subscription"]
__all__ += ["compile_filter", "match_pattern"]

Spec = str | Mapping[str, Any]  # a pattern or a filter dict
Callback = Callable[["Event"], Any]
Data = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None

_log = logging.getLogger("neurograph.events")
CHANNELS: tuple[str, ...] = ("signals", "actions", "metrics", "logs", "status", "connections")
FIELDS: tuple[str, ...] = ("channel", "event_type", "timestamp", "data")  # top-level filter fields
MAX_TYPE_LENGTH = 128  # characters, as for the event type of a signal (DESIGN §3)
_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_WILDCARD = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*\.\*")
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_MISSING = object()  # the value of an absent field

_TAXONOMY_ROWS = {  # DESIGN §7 with its braces unfolded: prefix -> leaves
    "signal.input.external.text": "chat command query transcription",
    "signal.input.external.audio": "speech music ambient alert",
    "signal.input.external.vision": "object face gesture scene",
    "signal.input.external.environment": "temperature humidity pressure light",
    "signal.input.internal": "thought memory_recall emotion prediction hypothesis",
    "signal.input.system.resource": "memory_low memory_critical cpu_high",
    "signal.input.system.lifecycle": "startup shutdown",
    "signal.input.system.timer": "tick heartbeat",
    "signal.activation": "resonance action_trigger memory_association pattern_match cascade",
    "signal.anomaly": "novelty contradiction outlier unexpected",
    "signal.meta.subscription": "added removed",
    "signal.meta.sensor": "registered unregistered",
}
TAXONOMY = tuple(f"{prefix}.{leaf}" for prefix, leaves in _TAXONOMY_ROWS.items() for leaf in leaves.split())


@dataclass(frozen=True, slots=True)
class Event:
    """One published event; ``to_dict()`` is its wire form (the websocket protocol of DESIGN §9)."""

    channel: str
    event_type: str
    timestamp: float
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(FIELDS, (self.channel, self.event_type, self.timestamp, dict(self.data))))


def _check_name(name: Any, pattern: bool = False) -> str:
    """Returns ``name`` if it is a valid event type (or, with ``pattern``, a pattern), else raises."""
    ok = isinstance(name, str) and len(name) <= MAX_TYPE_LENGTH
    if ok and (_NAME.fullmatch(name) or (pattern and (name == "*" or _WILDCARD.fullmatch(name)))):
        return name
    what, alt = ("event type pattern", ", 'a.b.*' or '*'") if pattern else ("event type", "")
    raise InvalidQuery(f"invalid {what} {name!r}: expected 2+ segments [a-z][a-z0-9_]*, <=128 chars{alt}")


class EventTypeRegistry:
    """The set of known event types, preloaded with :data:`TAXONOMY`."""

    def __init__(self, types: Iterable[str] = TAXONOMY) -> None:
        self._types: set[str] = {_check_name(name) for name in types}

    def register(self, event_type: str) -> str:
        """Adds ``event_type`` (idempotent) and returns it; a malformed name raises ``InvalidQuery``."""
        if event_type not in self._types:
            self._types.add(_check_name(event_type))
        return event_type

    def matching(self, pattern: str) -> list[str]:
        """The registered types that ``pattern`` matches, sorted."""
        match_fn = _pattern_fn(_check_name(pattern, pattern=True))
        return sorted(name for name in list(self._types) if match_fn(name))

    def __contains__(self, event_type: object) -> bool:
        return isinstance(event_type, str) and event_type in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._types))

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        return f"EventTypeRegistry({len(self._types)} types, {len(TAXONOMY)} from the taxonomy)"


def _always(_: Any, *__: Any) -> bool:
    return True


@lru_cache(maxsize=512)
def _pattern_fn(pattern: str) -> Callable[[str], bool]:
    if pattern == "*":
        return _always
    if pattern.endswith(".*"):
        return operator.methodcaller("startswith", pattern[:-1])  # "a.b.": the kept dot makes it dot-aware
    return pattern.__eq__


def match_pattern(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` (``*``, ``a.b.*``, a type); raises ``InvalidQuery``."""
    match_fn = _pattern_fn(_check_name(pattern, pattern=True))
    return isinstance(event_type, str) and match_fn(event_type)


def _prepare(op: str, ref: Any) -> Any:
    """Checks and pre-compiles the operand of an operator, once, at subscription."""
    if op in ("$in", "$nin"):
        if isinstance(ref, (str, bytes, Mapping)) or not isinstance(ref, Iterable):
            raise InvalidQuery(f"operator {op} expects a list of values, got {ref!r}")
        return list(ref)
    if op == "$regex":
        try:
            return ref if isinstance(ref, re.Pattern) else re.compile(ref)
        except (re.error, TypeError) as exc:
            raise InvalidQuery(f"operator $regex: invalid regular expression {ref!r} ({exc})") from None
    if op == "$wildcard":
        if not isinstance(ref, str):
            raise InvalidQuery(f"operator $wildcard expects a string pattern, got {ref!r}")
        with contextlib.suppress(InvalidQuery):
            return _pattern_fn(_check_name(ref, pattern=True))  # a dot-aware type pattern
        return partial(fnmatchcase, pat=ref)  # a plain glob on any other string
    return ref


def _contains(value: Any, ref: Any) -> bool:
    if isinstance(value, str):
        return isinstance(ref, str) and ref in value
    return isinstance(value, (list, tuple, set, frozenset, Mapping)) and ref in value


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {  # name -> test(value, prepared operand)
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, items: value in items,
    "$nin": lambda value, items: value not in items,
    "$contains": _contains,
    "$regex": lambda value, rx: isinstance(value, str) and rx.search(value) is not None,
    "$wildcard": lambda value, match_fn: isinstance(value, str) and match_fn(value),
}


def _test(test_fn: Callable[[Any, Any], Any], ref: Any, value: Any) -> bool:
    try:
        return bool(test_fn(value, ref))
    except Exception:  # incomparable types, arrays, odd objects: no match, never raise
        return False


def _child(value: Any, key: str) -> Any:
    try:
        if isinstance(value, Mapping):
            return value.get(key, _MISSING)
        return value[int(key)] if key.lstrip("-").isdigit() else value[key]
    except Exception:
        return _MISSING


def _getter(name: Any) -> Callable[[Event], Any]:
    head, _, rest = name.partition(".") if isinstance(name, str) else ("", "", "")
    keys = rest.split(".") if rest else []
    if head not in FIELDS or (keys and head != "data") or "" in keys:
        raise InvalidQuery(f"unknown field {name!r}: fields are {', '.join(FIELDS)} and data.<key>[.<key>]")

    def get(event: Event) -> Any:
        value = getattr(event, head)
        for key in keys:
            if (value := _child(value, key)) is _MISSING:
                break
        return value

    return get


def _all(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return preds[0] if len(preds) == 1 else lambda x: all(pred(x) for pred in preds)


def _condition(spec: Any, name: str) -> Callable[[Any], bool]:
    """The test of one field's value: a bare value (equality) or a dict of ANDed operators."""
    if not (isinstance(spec, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in spec)):
        return partial(_test, operator.eq, spec)
    tests = []
    for op, ref in spec.items():
        if op == "$not":
            inner = _condition(ref, name)
            tests.append(lambda value, inner=inner: not inner(value))
        elif op in _OPERATORS:
            tests.append(partial(_test, _OPERATORS[op], _prepare(op, ref)))
        else:
            known = " ".join([*_OPERATORS, "$not"])
            raise InvalidQuery(f"unknown operator {op!r} on field {name!r}; operators are {known}")
    return _all(tests)


def _compile(spec: Any) -> Callable[[Event], bool]:
    if not isinstance(spec, Mapping):
        raise InvalidQuery(f"a filter must be a dict, got {spec!r}")
    preds: list[Callable[[Event], bool]] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable) or not value:
                raise InvalidQuery(f"{key} expects a non-empty list of filters, got {value!r}")
            subs, combine = [_compile(sub) for sub in value], all if key == "$and" else any
            preds.append(lambda event, subs=subs, combine=combine: combine(s(event) for s in subs))
        elif key == "$not":
            inner = _compile(value)
            preds.append(lambda event, inner=inner: not inner(event))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidQuery(f"unknown operator {key!r} at the top of a filter; expected $and $or $not")
        else:
            get, test = _getter(key), _condition(value, key)
            preds.append(lambda event, get=get, test=test: (v := get(event)) is not _MISSING and test(v))
    return _all(preds) if preds else _always


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled spec, ``filter(event) -> bool``; ``route(channel, event_type)`` is the part of it
    decided by those two fields alone (all of a pattern; a dict's top-level conditions on them)."""

    spec: Spec
    match_fn: Callable[[Event], bool] = field(repr=False)
    route: Callable[[str, str], bool] = field(repr=False)

    def __call__(self, event: Event) -> bool:
        return self.match_fn(event)


def compile_filter(spec: Spec = "*") -> Filter:
    """Compiles a pattern or filter dict (module docstring) into a predicate; raises ``InvalidQuery``."""
    if isinstance(spec, str):
        type_fn = _pattern_fn(_check_name(spec, pattern=True))
        return Filter(spec, lambda event: type_fn(event.event_type), lambda _, kind: type_fn(kind))
    match_fn = _compile(spec)  # first: it checks that spec is a dict
    route_fn = _compile({k: v for k, v in spec.items() if k in ("channel", "event_type")})
    return Filter(spec, match_fn, lambda channel, kind: route_fn(Event(channel, kind, 0.0, _EMPTY)))


class Subscription:
    """A subscriber of an :class:`EventBus`: a callback, or a bounded async iterator (drop-oldest).

    ``id`` is unique per bus; ``spec`` is the pattern or filter dict, ``filter`` its compiled form;
    ``channels`` is ``None`` for all; ``delivered`` counts the events handed over (callback called or event
    buffered), ``dropped`` the buffered ones evicted unread, ``errors`` the callback failures.
    """

    def __init__(self, bus: EventBus, id_: int, filter_: Filter, channels: Any, callback: Any, maxsize: int):
        self.id, self.filter, self.spec, self.channels = id_, filter_, filter_.spec, channels
        self.callback, self.maxsize, self.closed = callback, maxsize, False
        self.delivered = self.dropped = self.errors = 0
        self._bus, self._buffer, self._lock = bus, deque[Event](maxlen=maxsize), threading.Lock()
        self._waiter: tuple[asyncio.AbstractEventLoop, int, asyncio.Event] | None = None  # the consumer's

    def _routed(self, channel: str, event_type: str) -> bool:
        return (self.channels is None or channel in self.channels) and self.filter.route(channel, event_type)

    def _deliver(self, event: Event) -> None:
        self.delivered += 1
        self._bus.delivered += 1
        if self.callback is None:
            with self._lock:
                if len(self._buffer) == self.maxsize:  # the append below evicts the oldest
                    self.dropped += 1
                    self._bus.dropped += 1
                self._buffer.append(event)
            if (waiter := self._waiter) is not None and not waiter[2].is_set():
                _wake(waiter)
            return
        try:
            if inspect.iscoroutine(result := self.callback(event)):
                self._bus._schedule(self, result)
        except Exception:
            _log.exception("subscriber %d failed on %s %s", self.id, event.channel, event.event_type)
            self.errors += 1
            self._bus.errors += 1

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.callback is not None:
            raise TypeError(f"subscription {self.id} has a callback; subscribe without one to iterate")
        loop = asyncio.get_running_loop()
        if (waiter := self._waiter) is None or waiter[0] is not loop:  # asyncio.Event is bound to a loop
            waiter = self._waiter = (loop, threading.get_ident(), asyncio.Event())
        while not self.closed:
            waiter[2].clear()  # clear, then look: a publish after the look sets it again
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
            await waiter[2].wait()
        raise StopAsyncIteration

    def drain(self) -> list[Event]:
        """Returns and clears the buffered events, oldest first (also after ``close``)."""
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
        return events

    def close(self) -> None:
        """Stops delivery and ends ``async for`` (buffered events stay for ``drain``); idempotent."""
        if not self.closed:
            self.closed = True
            self._bus._remove(self)
            if self._waiter is not None:
                _wake(self._waiter)

    unsubscribe = close

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "iterator" if self.callback is None else f"callback={getattr(self.callback, '__name__', '?')}"
        return (
            f"Subscription(id={self.id}, spec={self.spec!r}, channels={sorted(self.channels or ['*'])}, "
            f"{mode}, buffered={len(self._buffer)}/{self.maxsize}, delivered={self.delivered}, "
            f"dropped={self.dropped}, errors={self.errors}, closed={self.closed})"
        )


def _wake(waiter: tuple[asyncio.AbstractEventLoop, int, asyncio.Event]) -> None:
    loop, thread_id, wake = waiter
    if thread_id == threading.get_ident():
        wake.set()
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to wake
            loop.call_soon_threadsafe(wake.set)


class EventBus:
    """Routes published events to subscriptions; ``registry`` defaults to a new one of :data:`TAXONOMY`."""

    def __init__(self, registry: EventTypeRegistry | None = None, channels: Iterable[str] = CHANNELS) -> None:
        self.registry = registry if registry is not None else EventTypeRegistry()
        self.channels = tuple(channels)
        self._channel_set = frozenset(self.channels)
        self.published = self.delivered = self.dropped = self.errors = 0
        self._subs: tuple[Subscription, ...] = ()  # replaced, never mutated: publishers iterate freely
        self._routes: dict[tuple[str, str], tuple[Subscription, ...]] = {}  # reset on (un)subscribe
        self._lock, self._ids = threading.RLock(), itertools.count(1)
        self._tasks: set[asyncio.Future[Any]] = set()  # strong references to running async callbacks

    def _check_channel(self, channel: Any) -> str:
        if channel not in self._channel_set:
            raise InvalidQuery(f"unknown channel {channel!r}: channels are {', '.join(self.channels)}")
        return channel

    def subscribe(
        self, spec: Spec = "*", callback: Callback | None = None, *, channels: Any = None, maxsize: int = 1000
    ) -> Subscription:
        """Subscribes ``callback`` (``fn(event)``, ``async def fn(event)``, or ``None`` for an iterator
        buffering ``maxsize`` events) to the events matching ``spec`` (``"*"``, ``"a.b.*"``, a type or a
        filter dict) on ``channels`` (a name or names; ``None``: all). Raises ``InvalidQuery``."""
        filter_ = compile_filter(spec)
        if channels is not None:
            names = [channels] if isinstance(channels, str) else channels
            channels = frozenset(map(self._check_channel, names))
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise InvalidQuery(f"invalid maxsize {maxsize!r}: expected an int >= 1")
        sub = Subscription(self, next(self._ids), filter_, channels, callback, maxsize)
        with self._lock:
            self._subs, self._routes = (*self._subs, sub), {}
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs, self._routes = tuple(s for s in self._subs if s is not sub), {}

    def _targets(self, channel: str, event_type: str) -> tuple[Subscription, ...]:
        """The subscriptions routed to ``(channel, event_type)``, from the cache or computed into it."""
        if (targets := self._routes.get((channel, event_type))) is None:
            if channel not in self._channel_set or not isinstance(event_type, str):
                return ()
            with self._lock:
                targets = tuple(s for s in self._subs if s._routed(channel, event_type))
                if len(self._routes) >= 65536:  # bounds the cache under a flood of distinct types
                    self._routes = {}
                self._routes[(channel, event_type)] = targets
        return targets

    def has_subscribers(self, channel: str, event_type: str) -> bool:
        """Whether a subscription is routed to ``(channel, event_type)``: a cached dict lookup."""
        return bool(self._targets(channel, event_type))

    def publish(
        self, channel: str, event_type: str, data: Data = None, *, timestamp: float | None = None
    ) -> Event | None:
        """Publishes an event (its type registered on first use) to every matching subscription.

        ``data`` is a mapping or a zero-argument callable returning one, called only when a subscription
        is routed to ``(channel, event_type)``; ``timestamp`` defaults to ``time.time()``. Returns the
        :class:`Event`, or ``None`` when ``data`` was a callable and nobody listened. Raises
        ``InvalidQuery`` for an unknown channel or a malformed event type.
        """
        self._check_channel(channel)
        if event_type not in self.registry._types:
            self.registry.register(event_type)
        targets = self._targets(channel, event_type)
        self.published += 1
        if data is None:
            data = _EMPTY
        elif not isinstance(data, Mapping):
            if not callable(data):
                raise TypeError(f"data must be a mapping or a callable, got {type(data).__name__}")
            if not targets:
                return None
            data = data()
        event = Event(channel, event_type, time.time() if timestamp is None else float(timestamp), data)
        for sub in targets:
            if not sub.closed and sub.filter.match_fn(event):
                sub._deliver(event)
        return event

    def _schedule(self, sub: Subscription, coro: Any) -> None:
        """Runs the coroutine of an async callback: a task on the running loop, else ``asyncio.run``."""
        if (loop := asyncio._get_running_loop()) is None:
            asyncio.run(coro)  # no loop in this thread: run to the end; its errors reach _deliver
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(partial(self._settled, sub))

    def _settled(self, sub: Subscription, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("async subscriber %d failed", sub.id, exc_info=(type(exc), exc, exc.__traceback__))
            sub.errors += 1
            self.errors += 1

    def stats(self) -> dict[str, int]:
        """Counters since creation (published, delivered, dropped, errors) and the live subscribers."""
        keys = ("published", "delivered", "dropped", "errors")
        return {key: getattr(self, key) for key in keys} | {"subscribers": len(self._subs)}

    def __repr__(self) -> str:
        counters = ", ".join(f"{key}={value}" for key, value in self.stats().items())
        return f"EventBus({counters}, types={len(self.registry)})"
