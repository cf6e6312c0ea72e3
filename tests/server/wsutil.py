"""Small helpers over a raw ``websockets`` connection: a reader that keeps the channel events it skips
while waiting for a reply (an emit's event may arrive before its ``emitted`` reply)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
from websockets.asyncio.client import ClientConnection, connect


def ws_url(base: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return f"{base}?{query}" if query else base


class WS:
    """A websocket connection with ``send``/``reply``/``events`` helpers (JSON or msgpack frames)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []

    async def __aenter__(self) -> WS:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        return orjson.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame)

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, (str, bytes)) else orjson.dumps(msg).decode())

    async def reply(self, typ: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of type ``typ``; channel events met on the way go to the backlog."""
        while True:
            msg = await self.recv(timeout)
            if msg["type"] == typ:
                return msg
            if msg["type"] == "event":
                self.backlog.append(msg)
            elif msg["type"] == "events":
                self.backlog.extend(msg["events"])
            else:
                raise AssertionError(f"expected {typ!r}, got {msg}")

    async def events(self, n: int, timeout: float = 10.0, channel: str | None = None) -> list[dict]:
        """The next ``n`` channel events (backlog first, ``events`` frames flattened), of ``channel``."""
        out = [e for e in self.backlog if channel is None or e["channel"] == channel][:n]
        self.backlog = [e for e in self.backlog if e not in out]
        while len(out) < n:
            msg = await self.recv(timeout)
            batch = msg["events"] if msg["type"] == "events" else [msg] if msg["type"] == "event" else []
            if not batch:
                raise AssertionError(f"expected events, got {msg}")
            out.extend(e for e in batch if channel is None or e["channel"] == channel)
        self.backlog = out[n:] + self.backlog
        return out[:n]


async def open_ws(url: str, **kwargs: Any) -> tuple[WS, dict[str, Any]]:
    """Connect and read ``connected``."""
    ws = WS(await connect(url, **kwargs))
    hello = await ws.recv()
    assert hello["type"] == "connected", hello
    return ws, hello
