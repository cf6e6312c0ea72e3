"""The /ws protocol of DESIGN §9 against a real uvicorn: every client message and its reply, events,
msgpack frames, permessage-deflate, and bad frames answered or closed cleanly while the server stays up."""

from __future__ import annotations

import asyncio

import httpx
import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.server.conftest import token
from tests.server.live import Live
from tests.server.wsutil import WS, open_ws, ws_url

CHAT = "signal.input.external.text.chat"


async def test_every_message_has_its_reply(srv: Live) -> None:
    ws, hello = await open_ws(ws_url(srv.ws, token=token("admin", "ada")))
    assert hello["user_id"] == "ada" and hello["role"] == "admin" and hello["reconnected"] is False
    assert hello["client_id"] and hello["channels"] == []
    async with ws:
        await ws.send({"type": "ping", "id": 1})
        pong = await ws.reply("pong")
        assert pong["id"] == 1 and pong["timestamp"] > 0

        await ws.send({"type": "subscribe", "id": "s", "channels": ["signals", "status", "nope"]})
        sub = await ws.reply("subscribed")
        assert sub == {"type": "subscribed", "channels": ["signals", "status"], "denied": ["nope"], "id": "s"}

        await ws.send({"type": "get_subscriptions"})
        assert (await ws.reply("subscriptions"))["channels"] == ["signals", "status"]

        await ws.send({"type": "get_reconnection_token"})
        tok = await ws.reply("reconnection_token")
        assert tok["expires_in"] == 300 and len(tok["token"]) >= 24

        await ws.send({"type": "emit", "id": "e1", "event_type": CHAT, "vector": [0.11] * 8, "priority": 200})
        emitted = await ws.reply("emitted")
        assert emitted["id"] == "e1" and isinstance(emitted["result"]["token_id"], int)
        (event,) = await ws.events(1, channel="signals")
        assert event["event_type"] == CHAT and event["data"]["token_id"] == emitted["result"]["token_id"]
        assert {"is_novel", "resonance", "anomaly_score", "neighbor_count", "priority"} <= set(event["data"])

        vectors = np.random.default_rng(1).uniform(-0.5, 0.5, (3, 8)).tolist()
        await ws.send({"type": "emit", "id": "b", "vectors": vectors, "priorities": [10, 20, 30]})
        batch = (await ws.reply("emitted"))["results"]
        assert batch["count"] == 3 and len(batch["token_ids"]) == 3
        got = await ws.events(3, channel="signals")
        assert [e["data"]["token_id"] for e in got] == batch["token_ids"]
        assert [e["id"] for e in got] == sorted(e["id"] for e in got)

        await ws.send(
            {"type": "broadcast", "channel": "status", "event_type": "ops.notice", "data": {"x": 1}}
        )
        assert (await ws.reply("broadcast_sent"))["event_type"] == "ops.notice"
        (notice,) = await ws.events(1, channel="status")
        assert notice["event_type"] == "ops.notice" and notice["data"] == {"x": 1}

        await ws.send({"type": "unsubscribe", "channels": ["status"]})
        assert (await ws.reply("unsubscribed"))["channels"] == ["status"]
        await ws.send({"type": "unsubscribe"})
        assert (await ws.reply("unsubscribed"))["channels"] == ["signals"]
        await ws.send({"type": "get_subscriptions"})
        assert (await ws.reply("subscriptions"))["channels"] == []


async def test_errors_are_protocol_messages(srv: Live) -> None:
    ws, _ = await open_ws(ws_url(srv.ws, token=token("viewer")))
    async with ws:
        cases = [
            ("{not json", "invalid JSON"),
            ("[1, 2]", "must be a map"),
            ('{"no": "type"}', "needs a string 'type'"),
            ('{"type": "fly"}', "unknown message type 'fly'"),
            ('{"type": "subscribe", "channels": 3}', "needs 'channels'"),
            ('{"type": "broadcast", "channel": "status"}', "only admin"),
            ('{"type": "emit", "id": 9, "vector": [1, 2]}', "may not emit"),
        ]
        for frame, expected in cases:
            await ws.send(frame)
            err = await ws.reply("error")
            assert expected in err["message"], (frame, err)
        await ws.send(b"\xc1\xff\x00garbage")  # a binary frame that is not msgpack
        assert "invalid msgpack" in (await ws.reply("error"))["message"]
        await ws.send(msgpack.packb([1, 2]))
        assert "must be a map" in (await ws.reply("error"))["message"]
        await ws.send({"type": "ping"})
        assert (await ws.reply("pong"))["type"] == "pong"  # the connection is still good


async def test_bad_emit_gets_typed_error(srv: Live) -> None:
    ws, _ = await open_ws(ws_url(srv.ws, token=token("bot")))
    async with ws:
        await ws.send({"type": "emit", "id": "x", "vector": [1.0] * 7})
        err = await ws.reply("error")
        assert err["id"] == "x" and err["error"] == "InvalidSignal" and "vector" in err["message"]
        await ws.send({"type": "emit", "id": "y", "event_type": "Bad Type", "vector": [0.0] * 8})
        err = await ws.reply("error")
        assert err["id"] == "y" and err["error"] == "InvalidSignal" and "event_type" in err["message"]


async def test_oversized_and_garbage_frames_leave_the_server_up(srv: Live) -> None:
    ws, _ = await open_ws(srv.ws)
    big = "x" * (srv.server.config.max_message_bytes + 1)
    with pytest.raises(ConnectionClosed) as info:
        await ws.send({"type": "ping", "pad": big})
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # the server library's limit
    ws2, _ = await open_ws(srv.ws)
    async with ws2:
        await ws2.send({"type": "ping"})
        assert (await ws2.reply("pong"))["type"] == "pong"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{srv.http}/health/live")).status_code == 200


async def test_unknown_format_is_closed_cleanly(srv: Live) -> None:
    async with WS(await connect(ws_url(srv.ws, format="xml"))) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd.code == 1003


async def test_permessage_deflate_is_negotiated(srv: Live) -> None:
    async with WS(await connect(srv.ws, compression="deflate")) as ws:
        assert "permessage-deflate" in ws.ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert (await ws.recv())["type"] == "connected"
        await ws.send({"type": "ping"})
        assert (await ws.reply("pong"))["type"] == "pong"
    async with WS(await connect(srv.ws, compression=None)) as ws:  # a client without it still works
        assert "Sec-WebSocket-Extensions" not in ws.ws.response.headers
        assert (await ws.recv())["type"] == "connected"


async def test_msgpack_binary_frames(srv: Live) -> None:
    async with connect(ws_url(srv.ws, format="msgpack", token=token("bot"))) as ws:
        hello = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(hello, bytes) and msgpack.unpackb(hello)["type"] == "connected"
        await ws.send(msgpack.packb({"type": "subscribe", "channels": ["signals"]}))
        assert msgpack.unpackb(await ws.recv())["type"] == "subscribed"
        await ws.send(msgpack.packb({"type": "emit", "id": 5, "vector": [0.3] * 8}))
        seen: dict[str, dict] = {}
        while len(seen) < 2:
            frame = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(frame, bytes)
            msg = msgpack.unpackb(frame)
            seen[msg["type"]] = msg
        assert seen["emitted"]["id"] == 5
        assert seen["event"]["data"]["token_id"] == seen["emitted"]["result"]["token_id"]


async def test_events_coalesce_into_frames_for_a_client_behind(srv: Live) -> None:
    """A client that falls behind gets ``events`` frames; each element is the single-event message."""
    ws, _ = await open_ws(ws_url(srv.ws, token=token("bot")))
    async with ws, httpx.AsyncClient() as http:
        await ws.send({"type": "subscribe", "channels": ["signals"]})
        await ws.reply("subscribed")
        vectors = np.random.default_rng(2).uniform(-0.5, 0.5, (400, 8)).tolist()
        r = await http.post(f"{srv.http}/api/v1/emit/batch", json={"vectors": vectors})
        ids = r.json()["token_ids"]
        got = await ws.events(400, channel="signals")
        assert [e["data"]["token_id"] for e in got] == ids
        assert all(e["type"] == "event" and e["channel"] == "signals" for e in got)
