"""The hub: sessions, the fan-out of channel events to them, and resumption after a reconnection.

**Sessions and connections.** A *session* is one client's identity (``client_id``, its
:class:`~neurograph.server.auth.Principal`), its channels and its replay buffer (``deque(maxlen=1000)`` of
the events routed to it). A *connection* is one open websocket attached to a session, with its outgoing
``asyncio.Queue(maxsize=queue_size)`` and a writer task. When the socket goes, a session that holds an
unexpired reconnection token stays, detached, still subscribed and still buffering, until the token
expires (300 s); a new socket presenting the token takes it over: same ``client_id``, the channels
restored, the buffered events after the last one sent (or after ``last_event_id`` when the client says
which it saw last) replayed in order before anything new. A token is used once.

**Fan-out.** For each channel some session subscribed to, the hub holds one subscription on the engine's
bus (closed when the last session leaves the channel, so an engine nobody watches pays nothing). Its
callback runs in the publisher's thread (the engine's worker for ``signals``): it serialises the event
once (:class:`~neurograph.server.wire.EventItem`), appends it to an inbox and, if none is pending, asks the
event loop for one drain. The drain numbers the events (``id``) and puts each into the queue of every
connected session on its channel and into every subscribed session's replay buffer, a chunk (a quarter of
a queue, at most 256) per loop turn so that the writers empty the queues between chunks. A queue that is full
means a client that does not keep up: it is closed with code 1013 and a reason, and the others never
wait for it. ``signals`` events are slimmed to what a dashboard needs (``token_id``, ``is_novel``,
``priority`` when the engine reports it, ``resonance``, ``anomaly_score``, ``neighbor_count``,
``activation_spread``, ``triggered_actions``, and ``label`` / ``payload`` / ``meta`` when present).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neurograph.events import CHANNELS, Event, EventBus, Subscription
from neurograph.server.auth import Principal
from neurograph.server.config import ServerConfig
from neurograph.server.metrics import ServerMetrics
from neurograph.server.wire import EventItem, encode, events_frame
from neurograph.telemetry import span

__all__ = ["Connection", "Hub", "Session"]

_log = logging.getLogger("neurograph.server")
SLOW_CLOSE_CODE = 1013  # "try again later": the client's queue overflowed
RESUMED_CLOSE_CODE = 4000  # the session was taken over by a reconnection
TOKENS_PER_SESSION = 4  # valid reconnection tokens kept per session (newest)
CLOSE_TIMEOUT = 10.0  # seconds a close frame may wait for a stalled client to read (as uvicorn's own)


def _signal_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The slim ``signals`` record of an emit's event data (module docstring)."""
    meta = data.get("meta") or {}
    neighbors = data.get("neighbors")
    out = {
        "token_id": data.get("token_id"),
        "is_novel": data.get("is_novel"),
        "priority": data.get("priority", meta.get("priority") if isinstance(meta, Mapping) else None),
        "resonance": data.get("resonance"),
        "anomaly_score": data.get("anomaly_score"),
        "neighbor_count": len(neighbors) if neighbors is not None else 0,
        "activation_spread": data.get("activation_spread"),
        "triggered_actions": data.get("triggered_actions") or [],
    }
    for key in ("label", "payload", "meta", "correlation_id"):
        if data.get(key) is not None:
            out[key] = data[key]
    return out


class Session:
    """One client across its connections (module docstring)."""

    def __init__(self, client_id: str, principal: Principal, replay_size: int) -> None:
        self.client_id = client_id
        self.principal = principal
        self.channels: set[str] = set()
        self.replay: deque[EventItem] = deque(maxlen=replay_size)
        self.conn: Connection | None = None
        self.last_sent = 0  # id of the last event written to a socket
        self.expires = 0.0  # while detached: monotonic time after which it is dropped
        self.tokens: deque[str] = deque()  # its valid reconnection tokens, oldest first

    def __repr__(self) -> str:
        return (
            f"Session({self.client_id!r}, user={self.principal.user_id!r}, role={self.principal.role!r}, "
            f"channels={sorted(self.channels)}, attached={self.conn is not None}, replay={len(self.replay)})"
        )


class Connection:
    """One open websocket of a session: its outgoing queue and writer task.

    Args:
        send: ``await send(frame)`` writes one frame (``str`` for JSON, ``bytes`` for msgpack).
        close: ``await close(code, reason)`` closes the socket.
        fmt: ``"json"`` or ``"msgpack"``.
        queue_size: the bound of the outgoing queue.
        frame_events: most events coalesced into one frame.
    """

    def __init__(
        self,
        send: Callable[[str | bytes], Any],
        close: Callable[[int, str], Any],
        fmt: str,
        queue_size: int,
        frame_events: int,
        metrics: ServerMetrics,
    ) -> None:
        self.send, self._close, self.fmt = send, close, fmt
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.frame_events = frame_events
        self.metrics = metrics
        self.session: Session | None = None
        self.closing: tuple[int, str] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.handler: asyncio.Task[Any] | None = None  # the task reading the socket

    def start(self) -> None:
        self.handler = asyncio.current_task()
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def reply(self, message: Mapping[str, Any]) -> None:
        """Queue one protocol message (a reply); a full queue makes this a slow client."""
        if self.closing is None:
            try:
                self.queue.put_nowait(encode(message, self.fmt))
            except asyncio.QueueFull:
                self.overflow()
            else:
                self.metrics.messages_out.labels(message["type"]).inc()

    def overflow(self) -> None:
        """The queue is full: close this client with a reason (the others go on)."""
        if self.closing is None:
            self.metrics.slow_disconnects.inc()
            self.abort(SLOW_CLOSE_CODE, f"slow consumer: {self.queue.maxsize} messages queued")

    def abort(self, code: int, reason: str) -> None:
        """Stop writing and close the socket with ``code`` and ``reason`` (from the event loop)."""
        if self.closing is None:
            self.closing = (code, reason)
            if self.writer is not None:
                self.writer.cancel()
            asyncio.get_running_loop().create_task(self._close_quietly(code, reason))

    async def _close_quietly(self, code: int, reason: str) -> None:
        """Send the close frame; a client that reads nothing for ``CLOSE_TIMEOUT`` s is cut off instead
        (its handler is cancelled and the server library drops the TCP connection)."""
        try:
            await asyncio.wait_for(self._close(code, reason), CLOSE_TIMEOUT)
        except Exception:
            if self.handler is not None:
                self.handler.cancel()

    async def _emit(self, frame: bytes) -> None:
        await self.send(frame.decode() if self.fmt == "json" else frame)

    async def _write(self) -> None:
        queue, fmt, most = self.queue, self.fmt, self.frame_events
        try:
            while True:
                item = await queue.get()
                if isinstance(item, bytes):
                    await self._emit(item)
                    continue
                items = item if isinstance(item, list) else [item]
                after = None
                while len(items) < most and not queue.empty():
                    nxt = queue.get_nowait()
                    if isinstance(nxt, EventItem):
                        items.append(nxt)
                    elif isinstance(nxt, list):
                        items.extend(nxt)
                    else:
                        after = nxt
                        break
                await self._emit(events_frame(items, fmt))
                self.metrics.sent_events(len(items))
                if self.session is not None:
                    self.session.last_sent = items[-1].id
                if after is not None:
                    await self._emit(after)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away under the writer: the reader sees the disconnect
            return


class Hub:
    """Sessions, engine feeds and fan-out of one app (module docstring).

    Args:
        bus: the engine's event bus.
        config: the server settings (queue and replay sizes, token lifetime, frame size).
        metrics: the app's instruments.
    """

    def __init__(self, bus: EventBus, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.bus, self.config, self.metrics = bus, config, metrics
        self.sessions: dict[str, Session] = {}
        self.by_channel: dict[str, set[Session]] = {c: set() for c in CHANNELS}
        self._feeds: dict[str, Subscription] = {}
        self._tokens: dict[str, tuple[Session, float]] = {}  # token -> (session, monotonic expiry)
        self._inbox: deque[EventItem] = deque()
        self._scheduled = False
        self._chunk = max(1, min(256, config.queue_size // 4))  # events dispatched per loop turn
        self._ids = itertools.count(1)
        self._sessions_ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.last_id = 0

    # --- the engine side (any thread) -----------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        """Bus callback in the publisher's thread: serialise once, hand to the loop (module docstring).

        In the publisher's context (for an emit: inside the engine's ``emit`` span, with the caller's
        correlation id), so the ``neurograph.broadcast`` span is a child of the emit and the ``broadcast``
        log line carries its id."""
        with span("broadcast", channel=event.channel, event_type=event.event_type) as s:
            try:
                data = _signal_data(event.data) if event.channel == "signals" else event.data
                item = EventItem(event.channel, event.event_type, event.timestamp, data)
            except Exception:  # an unserialisable payload must not break the publisher
                self.metrics.errors.labels("serialise").inc()
                return
            if s is not None:
                s.set_attribute("sessions", len(self.by_channel[event.channel]))
        if _log.isEnabledFor(logging.DEBUG):
            where = {"channel": event.channel, "event_type": event.event_type}
            _log.debug("broadcast", extra={**where, "sessions": len(self.by_channel[event.channel])})
        self._inbox.append(item)
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to deliver to
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """On the loop: number the inbox's events and put them into the sessions' queues and buffers, a
        chunk at a time (the writers run between two chunks, so a burst larger than a queue does not make
        every client look slow)."""
        self._scheduled = False
        inbox, ids, by_channel = self._inbox, self._ids, self.by_channel
        for _ in range(self._chunk):
            if not inbox:
                return
            item = inbox.popleft()
            item.id = self.last_id = next(ids)
            for session in by_channel[item.channel]:
                session.replay.append(item)
                conn = session.conn
                if conn is not None and conn.closing is None:
                    try:
                        conn.queue.put_nowait(item)
                    except asyncio.QueueFull:
                        conn.overflow()
        if inbox and not self._scheduled:  # more: after the writers had their turn
            self._scheduled = True
            self.loop.call_soon(self._drain)

    def _feed(self, channel: str, on: bool) -> None:
        """Hold the engine bus subscription of ``channel`` while some session is on it."""
        if on and channel not in self._feeds:
            self._feeds[channel] = self.bus.subscribe("*", self._on_event, channels=channel)
        elif not on and channel in self._feeds:
            self._feeds.pop(channel).close()
        self.metrics.subscriptions.labels(channel).set(len(self.by_channel[channel]))

    # --- sessions (the event loop) --------------------------------------------------------------------
    def open_session(self, principal: Principal) -> Session:
        client_id = f"c{next(self._sessions_ids)}-{secrets.token_hex(4)}"
        session = self.sessions[client_id] = Session(client_id, principal, self.config.replay_size)
        return session

    def attach(self, session: Session, conn: Connection) -> None:
        session.conn, conn.session = conn, session
        self.metrics.connections.inc()

    def detach(self, conn: Connection) -> Session | None:
        """The socket of ``conn`` closed: keep its session for a reconnection while a token is valid."""
        session = conn.session
        if session is None or session.conn is not conn:
            return None
        session.conn = None
        self.metrics.connections.dec()
        now = time.monotonic()
        ttl = max((self._tokens[t][1] for t in session.tokens if t in self._tokens), default=0.0)
        if ttl > now:
            session.expires = ttl
        else:
            self.drop(session)
        return session

    def drop(self, session: Session) -> None:
        """Forget ``session``: its channels, tokens and buffer."""
        self.set_channels(session, ())
        self.sessions.pop(session.client_id, None)
        for token in session.tokens:
            self._tokens.pop(token, None)
        session.tokens.clear()

    def set_channels(self, session: Session, channels: Iterable[str]) -> None:
        new = set(channels)
        for channel in session.channels - new:
            self.by_channel[channel].discard(session)
            if not self.by_channel[channel]:
                self._feed(channel, False)
            else:
                self.metrics.subscriptions.labels(channel).set(len(self.by_channel[channel]))
        for channel in new - session.channels:
            self.by_channel[channel].add(session)
            self._feed(channel, True)
        session.channels = new

    def issue_token(self, session: Session) -> tuple[str, int]:
        """A one-use reconnection token for ``session``, valid ``reconnect_ttl`` seconds."""
        token = secrets.token_urlsafe(24)
        ttl = self.config.reconnect_ttl
        self._tokens[token] = (session, time.monotonic() + ttl)
        session.tokens.append(token)
        while len(session.tokens) > TOKENS_PER_SESSION:  # the oldest lapse: a client cannot hoard them
            self._tokens.pop(session.tokens.popleft(), None)
        return token, int(ttl)

    def resume(self, token: str, principal: Principal, conn: Connection) -> Session | None:
        """Attach ``conn`` to the session of ``token`` (module docstring); ``None``: unknown, expired, or
        issued to another user (nothing is restored)."""
        entry = self._tokens.pop(token, None)
        if entry is None:
            return None
        session, expires = entry
        with contextlib.suppress(ValueError):
            session.tokens.remove(token)
        alive = session.client_id in self.sessions
        if expires < time.monotonic() or not alive or session.principal.user_id != principal.user_id:
            return None
        if session.conn is not None:  # the old socket is still open (half-open network): take over
            old = session.conn
            self.detach_quietly(old)
            old.abort(RESUMED_CLOSE_CODE, "session resumed by another connection")
        session.principal = principal
        self.set_channels(session, {c for c in session.channels if principal.may_subscribe(c)})
        self.attach(session, conn)
        return session

    def missed(self, session: Session, last_event_id: int | None) -> list[EventItem]:
        """The buffered events of ``session`` after ``last_event_id`` (default: after the last one sent)."""
        after = session.last_sent if last_event_id is None else last_event_id
        return [item for item in session.replay if item.id > after]

    def detach_quietly(self, conn: Connection) -> None:
        session = conn.session
        if session is not None and session.conn is conn:
            session.conn = None
            self.metrics.connections.dec()

    def expire(self) -> None:
        """Drop expired tokens and the detached sessions no valid token can resume."""
        now = time.monotonic()
        for token in [t for t, (_, exp) in self._tokens.items() if exp < now]:
            session, _ = self._tokens.pop(token)
            with contextlib.suppress(ValueError):
                session.tokens.remove(token)
        for session in list(self.sessions.values()):
            if session.conn is None and session.expires < now:
                self.drop(session)

    def buffered(self) -> int:
        """Events queued for clients plus kept for replay."""
        queued = sum(s.conn.queue.qsize() for s in self.sessions.values() if s.conn is not None)
        return queued + sum(len(s.replay) for s in self.sessions.values())

    def stats(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "connections": sum(s.conn is not None for s in self.sessions.values()),
            "subscriptions": {c: len(s) for c, s in self.by_channel.items()},
            "buffered_events": self.buffered(),
            "last_event_id": self.last_id,
        }

    def close(self) -> None:
        for channel in list(self._feeds):
            self._feeds.pop(channel).close()
