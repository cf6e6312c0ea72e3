"""The ``/ws`` endpoint: the protocol of DESIGN §9 over one websocket.

Connect to ``/ws`` with optional query parameters ``format=json|msgpack``, ``token=<API key or JWT>``
(or an ``Authorization: Bearer`` / ``X-API-Key`` header), ``reconnection_token=<token>`` and
``last_event_id=<n>``. Bad credentials: the socket is accepted and closed at once with code 1008 and the
reason. Otherwise the first message is ``connected {client_id, user_id, role, reconnected, channels,
correlation_id}`` (the connection's id in logs and spans, :mod:`neurograph.telemetry`).

Client -> server (a ``type`` and an optional ``id`` that the reply echoes):

=========================  ========================================================================
``ping``                   ``pong {timestamp}``
``subscribe {channels}``   ``subscribed {channels, denied}`` (denied: not allowed for the role, or unknown)
``unsubscribe {channels}`` ``unsubscribed {channels}`` (no ``channels``: all)
``get_subscriptions``      ``subscriptions {channels}``
``get_reconnection_token`` ``reconnection_token {token, expires_in: 300}``
``emit``                   ``emitted {result}`` for ``vector`` (one signal), ``emitted {results}`` for
                           ``vectors`` (a batch); fields ``event_type``, ``priority``/``priorities``,
                           ``kind``/``kinds``, ``label``/``labels``, ``payload``/``payloads``
``broadcast``              (admin) publishes ``{channel, event_type, data}``: ``broadcast_sent``
=========================  ========================================================================

Server -> client besides the replies: channel events ``event {id, channel, event_type, timestamp,
data}`` (several at once as ``events {events}``) and ``error {message, retry_after?, id?}``. Every
message is answered or refused with ``error``: malformed JSON or msgpack, a message that is not a map, an
unknown type, a missing field, a rate-limited burst (``retry_after`` in seconds), a forbidden action.
The server library enforces the message size limit (close 1009), compression (permessage-deflate) and
keep-alive pings. Emits of one client run in order on the engine's thread while the socket keeps being
read, so a ``ping`` is answered during a long batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, WebSocket

from neurograph.errors import NeurographError
from neurograph.events import CHANNELS, is_event_type
from neurograph.server.auth import AuthError, credential_of
from neurograph.server.hub import Connection, Session
from neurograph.server.limits import RateLimiter
from neurograph.server.state import Server
from neurograph.server.wire import FORMATS, WireError, decode
from neurograph.telemetry import bind_correlation

__all__ = ["MESSAGE_TYPES", "install_ws"]

MESSAGE_TYPES = (
    "ping",
    "subscribe",
    "unsubscribe",
    "get_subscriptions",
    "get_reconnection_token",
    "emit",
    "broadcast",
)
_log = logging.getLogger("neurograph.server")
MAX_INFLIGHT_EMITS = 64  # per connection; more waits (the socket keeps being read meanwhile)


def _channels(msg: Mapping[str, Any]) -> list[str] | None:
    value = msg.get("channels", msg.get("channel"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return value
    return None


class _Client:
    """The handler of one connection: parses, rate-limits and answers its messages."""

    def __init__(self, server: Server, conn: Connection, session: Session) -> None:
        self.server, self.conn, self.session = server, conn, session
        self.hub = server.hub
        self.limiter = RateLimiter(server.config.limits)
        self.emits = asyncio.Semaphore(MAX_INFLIGHT_EMITS)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.metrics = server.metrics

    def reply(self, rid: Any, **fields: Any) -> None:
        """Queue a reply (``fields``), echoing the request's ``id`` when it had one."""
        out = dict(fields)
        if rid is not None:
            out["id"] = rid
        self.conn.reply(out)

    def error(self, message: str, rid: Any = None, kind: str = "protocol", **fields: Any) -> None:
        self.metrics.errors.labels(kind).inc()
        self.reply(rid, type="error", message=message, **fields)

    def handle(self, frame: str | bytes) -> None:
        try:
            msg = decode(frame)
        except WireError as exc:
            self.metrics.messages_in.labels("invalid").inc()
            self.error(str(exc))
            return
        typ = msg["type"]
        known = typ in MESSAGE_TYPES
        self.metrics.messages_in.labels(typ if known else "unknown").inc()
        rid = msg.get("id")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            rid = None
        retry = self.limiter.check(typ if known else "default")
        if retry > 0:
            self.metrics.rate_limited.labels(typ if known else "unknown").inc()
            self.error(f"rate limit exceeded for {typ!r}", rid, "rate_limited", retry_after=round(retry, 3))
            return
        if not known:
            self.error(f"unknown message type {typ[:64]!r}; known: {', '.join(MESSAGE_TYPES)}", rid)
            return
        getattr(self, f"on_{typ}")(msg, rid)

    def on_ping(self, msg: Mapping[str, Any], rid: Any) -> None:
        self.reply(rid, type="pong", timestamp=time.time())

    def on_subscribe(self, msg: Mapping[str, Any], rid: Any) -> None:
        wanted = _channels(msg)
        if wanted is None:
            self.error("subscribe needs 'channels': a list of channel names", rid)
            return
        principal = self.session.principal
        ok = [c for c in dict.fromkeys(wanted) if c in CHANNELS and principal.may_subscribe(c)]
        denied = [c for c in dict.fromkeys(wanted) if c not in ok]
        self.hub.set_channels(self.session, self.session.channels | set(ok))
        self.reply(rid, type="subscribed", channels=ok, denied=denied)

    def on_unsubscribe(self, msg: Mapping[str, Any], rid: Any) -> None:
        wanted = _channels(msg) if "channels" in msg or "channel" in msg else list(self.session.channels)
        if wanted is None:
            self.error("unsubscribe takes 'channels': a list of channel names", rid)
            return
        removed = sorted(self.session.channels & set(wanted))
        self.hub.set_channels(self.session, self.session.channels - set(wanted))
        self.reply(rid, type="unsubscribed", channels=removed)

    def on_get_subscriptions(self, msg: Mapping[str, Any], rid: Any) -> None:
        self.reply(rid, type="subscriptions", channels=sorted(self.session.channels))

    def on_get_reconnection_token(self, msg: Mapping[str, Any], rid: Any) -> None:
        token, ttl = self.hub.issue_token(self.session)
        self.reply(rid, type="reconnection_token", token=token, expires_in=ttl)

    def on_broadcast(self, msg: Mapping[str, Any], rid: Any) -> None:
        if not self.session.principal.is_admin:
            self.error("only admin may broadcast", rid, "forbidden")
            return
        channel, event_type, data = msg.get("channel"), msg.get("event_type"), msg.get("data", {})
        if channel not in CHANNELS or not is_event_type(event_type) or not isinstance(data, dict):
            self.error("broadcast needs 'channel' (a channel), 'event_type' (a.b) and 'data' (a map)", rid)
            return
        self.server.engine.bus.publish(channel, event_type, data)
        self.reply(rid, type="broadcast_sent", channel=channel, event_type=event_type)

    def on_emit(self, msg: Mapping[str, Any], rid: Any) -> None:
        if not self.session.principal.may_emit:
            self.error(f"role {self.session.principal.role!r} may not emit", rid, "forbidden")
            return
        task = asyncio.get_running_loop().create_task(self._emit(msg, rid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _emit(self, msg: Mapping[str, Any], rid: Any) -> None:
        async with self.emits:
            try:
                out = await self.server.emit(msg, "ws")
            except NeurographError as exc:
                self.error(str(exc), rid, "invalid", error=type(exc).__name__)
                return
            except Exception as exc:  # a bug, not the client's fault: logged, answered, the server goes on
                _log.exception("emit failed")
                self.error(f"internal error: {type(exc).__name__}", rid, "internal")
                return
        if "token_ids" in out:
            self.reply(rid, type="emitted", results=out)
        else:
            self.reply(rid, type="emitted", result=out)


async def _endpoint(websocket: WebSocket) -> None:
    server: Server = websocket.app.state.server
    hub, config = server.hub, server.config
    query = websocket.query_params
    fmt = query.get("format", "json")
    await websocket.accept()
    if fmt not in FORMATS:
        await websocket.close(1003, f"unknown format {fmt[:32]!r}: json or msgpack")
        return
    peer = websocket.client.host if websocket.client else None
    try:
        principal = server.auth.authenticate(credential_of(websocket.headers, query), peer)
    except AuthError as exc:
        server.metrics.errors.labels("auth").inc()
        await websocket.close(1008, str(exc)[:120])
        return

    async def send(frame: str | bytes) -> None:
        if isinstance(frame, str):
            await websocket.send({"type": "websocket.send", "text": frame})
        else:
            await websocket.send({"type": "websocket.send", "bytes": frame})

    async def close(code: int, reason: str) -> None:
        await websocket.close(code, reason)

    cid = bind_correlation()  # this connection's task: its emits, spans and log lines carry the id
    conn = Connection(send, close, fmt, config.queue_size, config.frame_events, server.metrics)
    token = query.get("reconnection_token")
    last_event_id = query.get("last_event_id")
    try:
        last = int(last_event_id) if last_event_id is not None else None
    except ValueError:
        last = None
    session = hub.resume(token, principal, conn) if token else None
    reconnected = session is not None
    if session is None:
        session = hub.open_session(principal)
        hub.attach(session, conn)
    conn.reply(
        {
            "type": "connected",
            "client_id": session.client_id,
            "user_id": principal.user_id,
            "role": principal.role,
            "reconnected": reconnected,
            "channels": sorted(session.channels),
            "correlation_id": cid,
        }
    )
    if reconnected and (missed := hub.missed(session, last)):
        conn.queue.put_nowait(missed)  # one slot: a replay may exceed queue_size
    conn.start()
    bus = server.engine.bus
    who = {"client_id": session.client_id, "user_id": principal.user_id, "role": principal.role, "peer": peer}
    bus.publish("connections", "connection.resumed" if reconnected else "connection.opened", who)
    client = _Client(server, conn, session)
    reason = "closed by the client"
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if conn.closing is not None:  # closing: read until the client answers the close frame
                continue
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            client.handle(frame)
    except asyncio.CancelledError:  # a stalled client cut off (Connection.abort) or shutdown
        if (task := asyncio.current_task()) is not None:
            task.uncancel()
    except Exception:  # a receive after the socket died: same as a disconnect
        pass
    finally:
        if conn.closing is not None:
            reason = conn.closing[1]
        if conn.writer is not None and conn.closing is None:
            conn.writer.cancel()
        hub.detach(conn)
        with contextlib.suppress(Exception):
            bus.publish("connections", "connection.closed", {**who, "reason": reason})


def install_ws(app: FastAPI, server: Server) -> None:
    """Add the ``/ws`` route to ``app``."""
    app.add_api_websocket_route("/ws", _endpoint)
