"""``neurograph.client.Client`` and ``neurograph ws`` against a real uvicorn on 127.0.0.1: subscribe with
callbacks, emit, query, msgpack, refused credentials, and a dropped connection that resumes by itself
with its reconnection token (same session, channels back, missed events replayed, none twice)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from neurograph.cli import main
from neurograph.client import Client, ClientError
from neurograph.server import ServerConfig, make_token
from tests.server.live import SECRET, Live, live


def fast_backoff() -> Iterator[float]:
    while True:
        yield 0.05


@pytest.fixture(scope="module")
def srv() -> Iterator[Live]:
    with live(config=ServerConfig(jwt_secret=SECRET, rate_limits={"emit": (1000, 1000)})) as server:
        yield server


def jwt(role: str = "developer", user: str = "dev") -> str:
    return make_token(SECRET, user, role)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_subscribe_emit_query(srv: Live, fmt: str) -> None:
    got: list[dict] = []
    async with Client(srv.ws, token=jwt(), format=fmt, backoff=fast_backoff) as client:
        assert client.role == "developer" and client.client_id
        assert await client.subscribe("signals", got.append) == ["signals"]
        result = await client.emit("signal.input.external.text.chat", [0.12] * 8, priority=200)
        batch = await client.emit_batch(np.full((3, 8), -0.12).tolist())
        await _until(lambda: len(got) >= 4)
        assert [e["data"]["token_id"] for e in got] == [result["token_id"], *batch["token_ids"]]
        assert (await client.ping())["type"] == "pong"
        assert await client.subscriptions() == ["signals"]
        rows = await client.query(f"find all tokens where id = {result['token_id']}")
        assert [r["id"] for r in rows] == [result["token_id"]]
        with pytest.raises(ClientError, match="vector"):
            await client.emit(vector=[1.0] * 3)
        assert await client.unsubscribe("signals") == ["signals"]


async def test_refused_credentials_raise(srv: Live) -> None:
    client = Client(srv.ws, token=make_token("wrong-secret-" + "z" * 32, "x", "admin"), backoff=fast_backoff)
    with pytest.raises(ClientError) as info:
        await client.connect()
    assert info.value.code == 1008
    await client.close()
    async with Client(srv.ws, backoff=fast_backoff) as anon:  # anonymous on loopback
        assert anon.role == "anonymous"
        with pytest.raises(ClientError, match="denied"):
            await anon.subscribe("connections")


async def test_dropped_connection_resumes_and_replays(srv: Live) -> None:
    got: list[dict] = []
    async with Client(srv.ws, token=jwt("bot", "robot"), backoff=fast_backoff) as client:
        await client.subscribe(["signals"], got.append)
        first_id = client.client_id
        async with httpx.AsyncClient(base_url=srv.http) as http:
            vec = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 8))
            ids = (await http.post("/api/v1/emit/batch", json={"vectors": vec[:2].tolist()})).json()[
                "token_ids"
            ]
            await _until(lambda: len(got) >= 2)
            # the network drops and, before the client is back, two more signals come: they wait in the
            # session's replay buffer (run on the server's loop so that the order is certain)
            session = srv.server.hub.sessions[first_id]

            async def drop_and_emit() -> list[int]:
                session.conn.abort(1011, "simulated drop")
                batch = await srv.engine.call(
                    srv.engine.emit_batch, "signal.input.external.text.chat", vec[2:]
                )
                return batch.token_ids.tolist()

            future = asyncio.run_coroutine_threadsafe(drop_and_emit(), srv.server.hub.loop)
            ids += await asyncio.wrap_future(future)
            await _until(lambda: client.resumed >= 1 and len(got) >= 4)
        assert client.client_id == first_id and client.reconnections >= 1
        assert [e["data"]["token_id"] for e in got] == ids  # in order, none lost, none twice
        assert await client.subscriptions() == ["signals"]
        await client.emit(vector=[0.33] * 8)  # and it works as before
        await _until(lambda: len(got) >= 5)


async def test_cli_ws_prints_events(srv: Live, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ws", "--url", srv.ws, "--subscribe", "signals,connections", "--token", jwt(), "--format", "json"]
    runner = asyncio.create_task(asyncio.to_thread(main, [*argv, "--count", "3", "--duration", "20"]))
    async with httpx.AsyncClient(base_url=srv.http) as http:
        while not runner.done():
            await http.post("/api/v1/emit", json={"vector": [0.44] * 8})
            await asyncio.sleep(0.05)
    assert await runner == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(lines) >= 3 and all(e["channel"] == "signals" for e in lines)
    assert "denied for role developer: connections" in err


@pytest.mark.parametrize("style", ["pretty", "compact"])
def test_cli_formats(style: str) -> None:
    from neurograph.cli import _format_event

    event = {"id": 7, "channel": "signals", "event_type": "a.b", "timestamp": 0.0, "data": {"token_id": 3}}
    line = _format_event(event, style)
    assert "a.b" in line and "token_id" in line and "\n" not in line
