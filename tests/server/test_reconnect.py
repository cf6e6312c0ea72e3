"""Reconnection tokens: a resumed session gets its channels back and the events it missed, in order; an
expired, unknown, reused or foreign token restores nothing; the replay buffer keeps the newest events."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from neurograph.server import ServerConfig
from tests.server.conftest import token
from tests.server.live import SECRET, Live, live
from tests.server.wsutil import WS, open_ws, ws_url


async def _subscribed(url: str, channels: list[str]) -> tuple[WS, dict, str]:
    ws, hello = await open_ws(url)
    await ws.send({"type": "subscribe", "channels": channels})
    await ws.reply("subscribed")
    await ws.send({"type": "get_reconnection_token"})
    tok = await ws.reply("reconnection_token")
    return ws, hello, tok["token"]


async def _emit(srv: Live, n: int, seed: int) -> list[int]:
    vectors = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 8)).tolist()
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}/api/v1/emit/batch", json={"vectors": vectors})
    return r.json()["token_ids"]


async def test_resume_restores_channels_and_replays_missed(srv: Live) -> None:
    jwt = token("bot", "resumer")
    ws, hello, tok = await _subscribed(ws_url(srv.ws, token=jwt), ["signals", "status"])
    first = await _emit(srv, 3, 0)
    seen = await ws.events(3, channel="signals")
    assert [e["data"]["token_id"] for e in seen] == first
    await ws.ws.close()
    await asyncio.sleep(0.05)
    missed = await _emit(srv, 5, 1)  # while nobody is connected
    ws2, hello2 = await open_ws(ws_url(srv.ws, token=jwt, reconnection_token=tok))
    async with ws2:
        assert hello2["reconnected"] is True and hello2["client_id"] == hello["client_id"]
        assert hello2["channels"] == ["signals", "status"]
        got = await ws2.events(5, channel="signals")
        assert [e["data"]["token_id"] for e in got] == missed
        assert got[0]["id"] > seen[-1]["id"]
        live_ids = await _emit(srv, 2, 2)  # and then the live stream goes on
        assert [e["data"]["token_id"] for e in await ws2.events(2, channel="signals")] == live_ids
        await ws2.send({"type": "get_subscriptions"})
        assert (await ws2.reply("subscriptions"))["channels"] == ["signals", "status"]
    # the token was used once: presenting it again restores nothing
    ws3, hello3 = await open_ws(ws_url(srv.ws, token=jwt, reconnection_token=tok))
    async with ws3:
        assert hello3["reconnected"] is False and hello3["channels"] == []


async def test_last_event_id_replays_from_there(srv: Live) -> None:
    jwt = token("bot", "precise")
    ws, _, tok = await _subscribed(ws_url(srv.ws, token=jwt), ["signals"])
    ids = await _emit(srv, 4, 3)
    got = await ws.events(4, channel="signals")
    await ws.ws.close()
    # the client says it saw only the first two: the last two come again
    ws2, hello2 = await open_ws(ws_url(srv.ws, token=jwt, reconnection_token=tok, last_event_id=got[1]["id"]))
    async with ws2:
        assert hello2["reconnected"] is True
        again = await ws2.events(2, channel="signals")
        assert [e["data"]["token_id"] for e in again] == ids[2:]


async def test_unknown_or_foreign_token_restores_nothing(srv: Live) -> None:
    ws, hello = await open_ws(ws_url(srv.ws, token=token("bot"), reconnection_token="no-such-token"))
    async with ws:
        assert hello["reconnected"] is False and hello["channels"] == []
    owner, _, tok = await _subscribed(ws_url(srv.ws, token=token("bot", "owner")), ["signals"])
    await owner.ws.close()
    thief, hello = await open_ws(ws_url(srv.ws, token=token("bot", "thief"), reconnection_token=tok))
    async with thief:
        assert hello["reconnected"] is False and hello["channels"] == []


async def test_expired_token_restores_nothing_and_buffer_keeps_newest() -> None:
    config = ServerConfig(jwt_secret=SECRET, reconnect_ttl=0.6, replay_size=10)
    with live(config=config) as srv:
        jwt = token("bot", "late")
        ws, _, tok = await _subscribed(ws_url(srv.ws, token=jwt), ["signals"])
        await ws.ws.close()
        await asyncio.sleep(1.0)
        await _emit(srv, 3, 4)
        ws2, hello = await open_ws(ws_url(srv.ws, token=jwt, reconnection_token=tok))
        async with ws2:
            assert hello["reconnected"] is False and hello["channels"] == []
            await ws2.send({"type": "ping"})
            assert (await ws2.reply("pong"))["type"] == "pong"  # no replayed event came first

        ws, _, tok = await _subscribed(ws_url(srv.ws, token=jwt), ["signals"])
        await ws.ws.close()
        await asyncio.sleep(0.05)
        ids = await _emit(srv, 25, 5)  # more than the buffer holds
        ws3, hello = await open_ws(ws_url(srv.ws, token=jwt, reconnection_token=tok))
        async with ws3:
            assert hello["reconnected"] is True
            got = await ws3.events(10, channel="signals")
            assert [e["data"]["token_id"] for e in got] == ids[-10:]
