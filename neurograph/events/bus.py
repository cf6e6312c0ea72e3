"""The event bus: subscribers of events, routed by type pattern or filter.

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
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from neurograph.errors import InvalidQuery
from neurograph.events.filters import Filter, Spec, compile_filter
from neurograph.events.taxonomy import CHANNELS, Event, EventTypeRegistry

__all__ = ["EventBus", "Subscription"]

Callback = Callable[["Event"], Any]
Data = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None

_log = logging.getLogger("neurograph.events")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


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
        self.loop = asyncio._get_running_loop()  # where an async callback runs (None: no loop subscribed)

    def _routed(self, channel: str, event_type: str) -> bool:
        return (self.channels is None or channel in self.channels) and self.filter.route(channel, event_type)

    def _deliver(self, event: Event) -> None:
        bus = self._bus
        with self._lock:  # publishers may be several threads: counters are updated under locks
            self.delivered += 1
            if self.callback is None:
                dropped = len(self._buffer) == self.maxsize  # the append below evicts the oldest
                self.dropped += dropped
                self._buffer.append(event)
        with bus._count_lock:
            bus.delivered += 1
            if self.callback is None:
                bus.dropped += dropped
        if self.callback is None:
            if (waiter := self._waiter) is not None and not waiter[2].is_set():
                _wake(waiter)
            return
        try:
            if inspect.iscoroutine(result := self.callback(event)):
                self._bus._schedule(self, result)
        except Exception:
            _log.exception("subscriber %d failed on %s %s", self.id, event.channel, event.event_type)
            self._failed()

    def _failed(self) -> None:
        with self._lock:
            self.errors += 1
        with self._bus._count_lock:
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
        self._count_lock = threading.Lock()  # the counters, from any publishing thread
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
        with self._count_lock:
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
        """Runs the coroutine of an async callback on the loop it was subscribed from (from any
        publishing thread: ``run_coroutine_threadsafe``); subscribed outside a loop, a task of the loop
        running in the publisher's thread, else :func:`asyncio.run`."""
        here = asyncio._get_running_loop()
        home = sub.loop if sub.loop is not None and not sub.loop.is_closed() else here
        if home is None:
            asyncio.run(coro)  # no loop anywhere: run to the end; its errors reach _deliver
            return
        if home is here:
            task: asyncio.Future[Any] = home.create_task(coro)
        else:
            task = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home), loop=home)
        with self._count_lock:
            self._tasks.add(task)
        task.add_done_callback(partial(self._settled, sub))

    def _settled(self, sub: Subscription, task: asyncio.Future[Any]) -> None:
        with self._count_lock:
            self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("async subscriber %d failed", sub.id, exc_info=(type(exc), exc, exc.__traceback__))
            sub._failed()

    def stats(self) -> dict[str, int]:
        """Counters since creation (published, delivered, dropped, errors) and the live subscribers."""
        keys = ("published", "delivered", "dropped", "errors")
        return {key: getattr(self, key) for key in keys} | {"subscribers": len(self._subs)}

    def __repr__(self) -> str:
        counters = ", ".join(f"{key}={value}" for key, value in self.stats().items())
        return f"EventBus({counters}, types={len(self.registry)})"
