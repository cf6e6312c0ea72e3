"""DESIGN §8 through the server: ``neurograph serve --path STORE`` is killed with SIGKILL while clients emit
over the socket and through REST; restarted on the same store, it holds every emit it acknowledged (each
acknowledged token at its vector)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from websockets.exceptions import ConnectionClosed

from neurograph.server import ServerConfig
from neurograph.space import AXES
from tests.server.live import live, spawn
from tests.server.wsutil import open_ws

# every signal makes a new token at its vector (threshold far below the gaps of uniform 8-D points)
CONFIG = {
    "engine": {"cdna": {"novelty_threshold": 0.01, "neighbor_radius": 0.35}, "durability": "full"},
    "rate_limits": {"emit": [100000, 100000]},
}


async def _socket_emitter(port: int, seed: int, acked: list, stop: asyncio.Event) -> None:
    rng = np.random.default_rng(seed)
    ws, _ = await open_ws(f"ws://127.0.0.1:{port}/ws")
    with contextlib.suppress(ConnectionClosed, OSError, asyncio.TimeoutError):
        i = 0
        while not stop.is_set():
            v = rng.uniform(-0.5, 0.5, 8).astype(np.float32)
            await ws.send({"type": "emit", "id": i, "vector": v.tolist()})
            msg = await ws.reply("emitted")
            acked.append((msg["result"]["token_id"], v))
            i += 1


async def _rest_emitter(port: int, seed: int, acked: list, stop: asyncio.Event) -> None:
    rng = np.random.default_rng(seed)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        with contextlib.suppress(httpx.HTTPError):
            while not stop.is_set():
                v = rng.uniform(-0.5, 0.5, (16, 8)).astype(np.float32)
                r = await http.post("/api/v1/emit/batch", json={"vectors": v.tolist()})
                acked.extend(zip(r.json()["token_ids"], v))


@pytest.mark.slow
async def test_sigkill_loses_no_acknowledged_emit(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    store, log = tmp_path / "store", tmp_path / "server.log"
    proc, port = await asyncio.to_thread(spawn, store, config, log)
    acked: list[tuple[int, np.ndarray]] = []
    stop = asyncio.Event()
    try:
        tasks = [
            asyncio.create_task(_socket_emitter(port, 1, acked, stop)),
            asyncio.create_task(_socket_emitter(port, 2, acked, stop)),
            asyncio.create_task(_rest_emitter(port, 3, acked, stop)),
        ]
        while len(acked) < 150:  # kill while all three are in full flow
            await asyncio.sleep(0.02)
            assert proc.poll() is None, log.read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 150
    # restart on the same store (in this process: one interpreter start less), no other argument
    config = ServerConfig(path=str(store))
    with live(None, config) as srv:
        async with httpx.AsyncClient(base_url=srv.http, timeout=30) as http:
            rows = (await http.get("/api/v1/query", params={"q": "find all tokens", "limit": 100000})).json()
    stored = {row["id"]: np.array([row[a] for a in AXES], np.float32) for row in rows["rows"]}
    missing = [tid for tid, _ in acked if tid not in stored]
    assert not missing, f"{len(missing)} acknowledged emits lost of {len(acked)}"
    for tid, v in acked:
        np.testing.assert_allclose(stored[tid], v, atol=1e-6)
