"""``Client``: an async Python client of the ``/ws`` streamer (and of ``GET /api/v1/query``).

::

    async with Client("ws://127.0.0.1:8000/ws", token=key) as client:
        await client.subscribe("signals", lambda event: print(event["data"]["token_id"]))
        result = await client.emit("signal.input.external.text.chat", [0.1] * 8, priority=200)
        rows = await client.query("find all tokens limit 5")

**Reconnection.** The client reconnects by itself (at once after a drop, then with ``websockets``'
exponential back-off and its rule of which errors are transient) and resumes: it keeps a fresh
reconnection token (asked after each connection and before the last one expires), presents it with the id
of the last event it saw, and the server restores its session (same ``client_id``, channels) and replays
the events it missed (up to 1,000). If the token could not be used (expired, server restarted) the client
subscribes again to its channels. Requests in flight when the connection drops fail with
:class:`ConnectionError` (an ``emit`` is not resent blindly: it may have been applied); the next ones
wait for the new connection. A close with code 1008 (bad credentials) is final: :class:`ClientError` is
raised and no reconnection is tried.

**Callbacks** get each event as a dict ``{id, channel, event_type, timestamp, data}``, in order; an ``async
def`` callback is awaited before the next event is handed over, so keep it short.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import msgpack
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import backoff, process_exception
from websockets.exceptions import ConnectionClosed

from neurograph.errors import NeurographError

__all__ = ["Client", "ClientError"]

_log = logging.getLogger("neurograph.client")
Callback = Callable[[dict[str, Any]], Any]


class ClientError(NeurographError):
    """The server refused a request (``error``) or the credentials (close 1008).

    Attributes:
        retry_after: seconds to wait before retrying (a rate-limited request), else ``None``.
        code: the close code when the connection was refused, else ``None``.
    """

    def __init__(self, message: str, retry_after: float | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class Client:
    """An async, self-reconnecting client of the streamer (module docstring).

    Args:
        url: the ``/ws`` URL, e.g. ``ws://127.0.0.1:8000/ws``.
        token: an API key or a JWT (``None``: anonymous, loopback servers only).
        format: ``"json"`` (text frames) or ``"msgpack"`` (binary frames).
        timeout: seconds a request waits for its reply (and for a connection).
        http_url: base URL of the REST API for :meth:`query` (default: derived from ``url``).
        compression: ``"deflate"`` (permessage-deflate, the default) or ``None``.
        backoff: a generator function of reconnection delays (default: ``websockets``' exponential
            back-off with jitter).
    """

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8000/ws",
        *,
        token: str | None = None,
        format: str = "json",
        timeout: float = 30.0,
        http_url: str | None = None,
        compression: str | None = "deflate",
        backoff: Callable[[], Iterator[float]] | None = None,
    ) -> None:
        if format not in ("json", "msgpack"):
            raise ValueError(f"format must be 'json' or 'msgpack', got {format!r}")
        self.url, self.token, self.format, self.timeout = url, token, format, timeout
        self.compression, self.backoff = compression, backoff
        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, "http")
        self.http_url = http_url or urlunsplit((scheme, parts.netloc, "", "", ""))
        self.client_id: str | None = None
        self.user_id: str | None = None
        self.role: str | None = None
        self.last_event_id: int | None = None
        self.reconnections = 0  # connections after the first
        self.resumed = 0  # reconnections that resumed the session
        self._callbacks: dict[str, list[Callback]] = {}
        self._reconnection_token: str | None = None
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------------------
    async def connect(self) -> Client:
        """Start the connection task and wait for the first ``connected``.

        Raises:
            ClientError: the server refused the credentials.
            TimeoutError: no connection within ``timeout``.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await self._wait_connected()
        return self

    async def close(self) -> None:
        """Close the connection and stop reconnecting (idempotent)."""
        self._closing = True
        for task in (self._refresh, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._refresh = None
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _wait_connected(self) -> None:
        waiter = asyncio.create_task(self._connected.wait())
        watch = [waiter] + ([self._task] if self._task is not None else [])
        try:
            await asyncio.wait(watch, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._failure is not None:
            raise self._failure
        if not self._connected.is_set():
            raise TimeoutError(f"no connection to {self.url} within {self.timeout} s")

    def _uri(self) -> str:
        params: dict[str, Any] = {"format": self.format}
        if self.token:
            params["token"] = self.token
        if self._reconnection_token:
            params["reconnection_token"] = self._reconnection_token
            if self.last_event_id is not None:
                params["last_event_id"] = self.last_event_id
        return f"{self.url}?{urlencode(params)}"

    async def _run(self) -> None:
        """Connect, serve, and on a drop connect again: at once after a connection that was up, then with
        back-off (``websockets``' own delays and its rule of which errors are transient); each new
        connection presents the fresh reconnection token."""
        options: dict[str, Any] = {
            "compression": self.compression,
            "open_timeout": self.timeout,
            "max_size": None,
        }
        delays: Iterator[float] | None = None
        first = True
        try:
            while not self._closing:
                try:
                    async with connect(self._uri(), **options) as ws:
                        self._ws, delays = ws, None
                        self.reconnections += not first
                        first = False
                        try:
                            await self._serve(ws)
                        finally:
                            self._lost()
                except ConnectionClosed as exc:
                    if exc.rcvd is not None and exc.rcvd.code == 1008:
                        raise ClientError(f"refused: {exc.rcvd.reason}", code=1008) from exc
                except Exception as exc:
                    if (fatal := process_exception(exc)) is not None:
                        raise ClientError(f"cannot connect to {self.url}: {exc}") from fatal
                    delays = delays or (self.backoff or backoff)()
                    await asyncio.sleep(next(delays))
        except ClientError as exc:
            self._failure = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
        finally:
            self._lost()

    def _lost(self) -> None:
        self._connected.clear()
        self._ws = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost before the reply"))
        self._pending.clear()

    async def _serve(self, ws: ClientConnection) -> None:
        hello = self._decode(await ws.recv())
        if hello.get("type") != "connected":
            raise ClientError(f"expected 'connected', got {hello.get('type')!r}")
        self.client_id, self.user_id, self.role = hello["client_id"], hello["user_id"], hello["role"]
        reader = asyncio.create_task(self._read(ws))
        try:
            if hello.get("reconnected"):
                self.resumed += 1
            elif self._callbacks:  # a fresh session: subscribe again
                await self._request({"type": "subscribe", "channels": sorted(self._callbacks)}, ws)
            self._reconnection_token = None
            await self._renew_token(ws)
            self._connected.set()
            await reader
        finally:
            reader.cancel()

    async def _renew_token(self, ws: ClientConnection) -> None:
        reply = await self._request({"type": "get_reconnection_token"}, ws)
        self._reconnection_token = reply["token"]
        if self._refresh is not None:
            self._refresh.cancel()
        self._refresh = asyncio.create_task(self._refresh_later(ws, 0.8 * float(reply["expires_in"])))

    async def _refresh_later(self, ws: ClientConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await self._renew_token(ws)

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            msg = self._decode(frame)
            typ = msg.get("type")
            if typ == "event":
                await self._deliver(msg)
            elif typ == "events":
                for event in msg["events"]:
                    await self._deliver(event)
            elif (rid := msg.get("id")) is not None and (fut := self._pending.pop(str(rid), None)):
                if fut.done():
                    continue
                if typ == "error":
                    fut.set_exception(ClientError(msg.get("message", "error"), msg.get("retry_after")))
                else:
                    fut.set_result(msg)
            elif typ == "error":
                _log.warning("server error: %s", msg.get("message"))

    async def _deliver(self, event: dict[str, Any]) -> None:
        self.last_event_id = event.get("id", self.last_event_id)
        for callback in self._callbacks.get(event.get("channel", ""), ()):
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log.exception("callback failed on %s", event.get("event_type"))

    def _decode(self, frame: str | bytes) -> dict[str, Any]:
        return orjson.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame, raw=False)

    def _encode(self, msg: Mapping[str, Any]) -> str | bytes:
        return orjson.dumps(msg).decode() if self.format == "json" else msgpack.packb(msg, use_bin_type=True)

    # --- requests -------------------------------------------------------------------------------------
    async def _request(self, msg: Mapping[str, Any], ws: ClientConnection | None = None) -> dict[str, Any]:
        if ws is None:
            if not self._connected.is_set():
                await self._wait_connected()
            ws = self._ws
            if ws is None:
                raise ConnectionError("not connected")
        rid = f"r{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send(self._encode({**msg, "id": rid}))
        except ConnectionClosed as exc:
            self._pending.pop(rid, None)
            raise ConnectionError("connection lost before the request was sent") from exc
        try:
            return await asyncio.wait_for(fut, self.timeout)
        finally:
            self._pending.pop(rid, None)

    async def request(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Send any protocol message and return its reply (raises :class:`ClientError` on ``error``)."""
        return await self._request(msg)

    async def ping(self) -> dict[str, Any]:
        """The ``pong`` reply."""
        return await self._request({"type": "ping"})

    async def subscribe(self, channels: str | Iterable[str], callback: Callback | None = None) -> list[str]:
        """Subscribe to ``channels`` and hand their events to ``callback``; returns the channels granted.

        Raises:
            ClientError: every channel was denied for this client's role.
        """
        names = [channels] if isinstance(channels, str) else list(channels)
        reply = await self._request({"type": "subscribe", "channels": names})
        granted = list(reply["channels"])
        for name in granted:
            self._callbacks.setdefault(name, [])
            if callback is not None:
                self._callbacks[name].append(callback)
        if not granted and reply.get("denied"):
            raise ClientError(f"denied: {', '.join(reply['denied'])}")
        return granted

    async def unsubscribe(self, channels: str | Iterable[str] | None = None) -> list[str]:
        """Leave ``channels`` (``None``: all); returns the channels left."""
        msg: dict[str, Any] = {"type": "unsubscribe"}
        if channels is not None:
            msg["channels"] = [channels] if isinstance(channels, str) else list(channels)
        reply = await self._request(msg)
        for name in reply["channels"]:
            self._callbacks.pop(name, None)
        return list(reply["channels"])

    async def subscriptions(self) -> list[str]:
        return list((await self._request({"type": "get_subscriptions"}))["channels"])

    async def emit(
        self,
        event_type: str = "signal.input.external.text.chat",
        vector: Sequence[float] = (),
        priority: int = 128,
        **fields: Any,
    ) -> dict[str, Any]:
        """Emit one signal over the socket; returns its ``EmitResult`` as a dict.

        Args:
            event_type: dotted type of the signal.
            vector: 8 numbers.
            priority: 0..255.
            **fields: ``kind``, ``label``, ``payload``.

        Raises:
            ClientError: the server refused it (bad input, role, rate limit: see ``retry_after``).
            ConnectionError: the connection dropped before the reply (the emit may have been applied).
        """
        msg = {
            "type": "emit",
            "event_type": event_type,
            "vector": list(vector),
            "priority": priority,
            **fields,
        }
        return (await self._request(msg))["result"]

    async def emit_batch(
        self,
        vectors: Sequence[Sequence[float]],
        event_type: str = "signal.input.external.text.chat",
        priorities: int | Sequence[int] = 128,
        **fields: Any,
    ) -> dict[str, Any]:
        """Emit ``B`` signals as one batch over the socket: ``count, novel, token_ids, is_novel, ...``."""
        rows = [list(map(float, v)) for v in vectors]
        msg = {"type": "emit", "event_type": event_type, "vectors": rows, "priorities": priorities, **fields}
        if not isinstance(priorities, int):
            msg["priorities"] = list(priorities)
        return (await self._request(msg))["results"]

    async def query(self, q: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Rows of a query through ``GET /api/v1/query`` (``docs/query.md``)."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(base_url=self.http_url, timeout=self.timeout) as http:
            response = await http.get("/api/v1/query", params={"q": q, "limit": limit}, headers=headers)
        body = response.json()
        if response.status_code != 200:
            raise ClientError(body.get("message", response.text))
        return body["rows"]

    def __repr__(self) -> str:
        return (
            f"Client({self.url!r}, client_id={self.client_id!r}, connected={self.connected}, "
            f"channels={sorted(self._callbacks)}, reconnections={self.reconnections})"
        )
