"""A client that stops reading fills its bounded queue and is disconnected with a reason (close 1013),
while a client that keeps up receives every event and the server goes on."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from neurograph.server import ServerConfig
from tests.server.conftest import token
from tests.server.live import SECRET, live
from tests.server.wsutil import WS, open_ws, ws_url


async def test_slow_client_is_cut_off_not_waited_for() -> None:
    config = ServerConfig(jwt_secret=SECRET, queue_size=64, frame_events=8)
    with live(config=config) as srv:
        url = ws_url(srv.ws, token=token("bot"))
        # max_queue=1 and no compression: the slow client stops reading from its socket at once
        slow = WS(await connect(url, compression=None, max_queue=1))
        assert (await slow.recv())["type"] == "connected"
        await slow.send({"type": "subscribe", "channels": ["signals"]})
        assert (await slow.reply("subscribed"))["channels"] == ["signals"]
        fast, _ = await open_ws(url)
        await fast.send({"type": "subscribe", "channels": ["signals"]})
        await fast.reply("subscribed")
        rng = np.random.default_rng(0)
        total, received = 0, 0
        filler = {"text": rng.bytes(600).hex()}  # ~1.2 kB per event: the socket buffers fill sooner
        async with httpx.AsyncClient(base_url=srv.http, timeout=30) as http:
            for _ in range(60):  # until the slow client's queue overflows
                vectors = rng.uniform(-0.9, 0.9, (500, 8)).tolist()
                body = {"vectors": vectors, "payloads": [filler] * 500}
                r = await http.post("/api/v1/emit/batch", json=body)
                total += r.json()["count"]
                received += len(await fast.events(r.json()["count"], channel="signals", timeout=30))
                if srv.server.metrics.slow_disconnects._value.get() >= 1:
                    break
            assert srv.server.metrics.slow_disconnects._value.get() == 1
            assert received == total  # the fast client missed nothing
            assert (await http.get("/health/ready")).status_code == 200
        with pytest.raises(ConnectionClosed) as info:  # reading now drains up to the close frame
            while True:
                await asyncio.wait_for(slow.ws.recv(), 15)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        assert "slow consumer" in info.value.rcvd.reason
        await fast.ws.close()
