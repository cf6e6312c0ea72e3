#!/usr/bin/env python3
"""Streamer delivery: events/s delivered to N subscribed websocket clients and emit-to-receipt latency.

A real server (``neurograph serve`` in a subprocess, an in-memory engine, 127.0.0.1, a free port) and, in
this process, N clients (1, 10, 100 by default) subscribed to ``signals`` with the ``bot`` role. Signals
are emitted for ``--seconds`` in two ways, one after the other:

``rest``  ``POST /api/v1/emit/batch`` with ``--batch`` rows, one request after the other;
``ws``    ``emit`` messages over one extra socket, one signal each, ``--window`` in flight;
``fanout`` ``broadcast`` messages of an admin socket on ``status`` (a signal-sized record each,
          ``--window`` in flight): the server's fan-out alone, without the engine's ingest.

Every client counts the events it receives; the delivered rate is all events received by all clients
divided by the time from the first emit to the last receipt. Latency is the receipt time (``time.time()``
when the client decoded the frame) minus the event's ``timestamp`` (``time.time()`` when the engine
published it, right after the signal was accepted; same machine, same clock): it covers the server's
fan-out, the socket and the client's decoding, not the engine's own processing of the batch (reported
separately as the REST round trip). The vectors are uniform in the box, so most signals are novel.

Targets (issue 14, 2 CPU cores): with 10 clients >= 50,000 delivered events/s and p99 <= 5 ms; with 100
clients, what is reached. Server and clients share the machine (and its cores with whatever else runs:
the load average is recorded), so the clients' own decoding counts against the server.

Usage:
  python scripts/bench_ws.py               # 1, 10, 100 clients; JSON under benchmarks/results/
  python scripts/bench_ws.py --clients 10 --seconds 3 --json /tmp/ws.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml
from benchmeta import machine
from websockets.asyncio.client import connect

from neurograph.server import make_token

TARGET_RATE, TARGET_P99_MS = 50_000, 5.0  # 10 clients (issue 14)
SEED_FIGURE_MS = 5.0  # the seed project's delivery figure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(secret: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    """``neurograph serve`` on a free port, in-memory engine, limits opened for the bench."""
    port = free_port()
    config = {
        "rate_limits": {"emit": [1_000_000, 1_000_000], "broadcast": [1_000_000, 1_000_000]},
        "queue_size": 100_000,
        "metrics_interval": 3600.0,
        "log_level": "WARNING",
    }
    path = workdir / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, NEUROGRAPH_JWT_SECRET=secret, TQDM_DISABLE="1")
    cmd = [sys.executable, "-m", "neurograph", "serve", "--port", str(port), "--config", str(path)]
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text()[-3000:])
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready")


class Receiver:
    """One subscribed client: counts events and keeps their latencies (ms)."""

    def __init__(self) -> None:
        self.count = 0
        self.latency: list[float] = []
        self.last = 0.0

    async def run(self, url: str, ready: asyncio.Event, started: list[int], compression: str | None) -> None:
        async with connect(url, max_size=None, max_queue=None, compression=compression) as ws:
            assert orjson.loads(await ws.recv())["type"] == "connected"
            await ws.send('{"type":"subscribe","channels":["signals","status"]}')
            assert orjson.loads(await ws.recv())["type"] == "subscribed"
            started[0] += 1
            if started[0] == started[1]:
                ready.set()
            async for frame in ws:
                now = time.time()
                msg = orjson.loads(frame)
                batch = msg["events"] if msg["type"] == "events" else [msg] if msg["type"] == "event" else []
                self.count += len(batch)
                self.latency.extend((now - e["timestamp"]) * 1e3 for e in batch)
                self.last = now


async def emit_rest(
    base: str, seconds: float, batch: int, rng: np.random.Generator, rate: float = 0.0
) -> dict[str, Any]:
    """``POST /api/v1/emit/batch`` of ``batch`` rows, one request after the other, paced to ``rate``
    requests per second (0: as fast as answered)."""
    sent, calls, rtt = 0, 0, []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await pace(calls, t0, rate)
            vectors = rng.uniform(-0.9, 0.9, (batch, 8)).round(5).tolist()
            t = time.perf_counter()
            r = await http.post("/api/v1/emit/batch", json={"vectors": vectors})
            rtt.append((time.perf_counter() - t) * 1e3)
            sent += r.json()["count"]
            calls += 1
    return {"sent": sent, "calls": calls, "rest_rtt_ms_p50": float(np.percentile(rtt, 50))}


async def emit_ws(
    url: str, seconds: float, window: int, rate: float, rng: np.random.Generator
) -> dict[str, Any]:
    """``emit`` messages, one signal each, ``window`` in flight."""

    def message(i: int) -> dict[str, Any]:
        return {"type": "emit", "id": i, "vector": rng.uniform(-0.9, 0.9, 8).round(5).tolist()}

    return await _windowed(url, seconds, window, rate, message, "emitted")


async def emit_fanout(url: str, seconds: float, window: int, rate: float) -> dict[str, Any]:
    """``broadcast`` messages (admin) on ``status``: the fan-out alone, without the engine's ingest."""

    def message(i: int) -> dict[str, Any]:
        data = {"seq": i, "token_id": i, "is_novel": True, "resonance": 0.5, "neighbor_count": 3}
        return {"type": "broadcast", "channel": "status", "event_type": "bench.tick", "data": data}

    return await _windowed(url, seconds, window, rate, message, "broadcast_sent")


async def _windowed(
    url: str, seconds: float, window: int, rate: float, message: Any, ack: str
) -> dict[str, Any]:
    """Send ``message(i)`` for ``seconds``, at most ``window`` unacknowledged (replies of type ``ack``),
    paced to ``rate`` per second (0: as fast as acknowledged); returns how many were acknowledged."""
    sent = 0
    async with connect(url, max_size=None) as ws:
        await ws.recv()  # connected
        inflight = asyncio.Semaphore(window)
        done = asyncio.Event()

        async def acks() -> None:
            nonlocal sent
            async for frame in ws:
                if orjson.loads(frame)["type"] == ack:
                    sent += 1
                    inflight.release()
                if done.is_set() and inflight._value == window:  # all acknowledged
                    return

        reader = asyncio.create_task(acks())
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            await inflight.acquire()
            await pace(i, t0, rate)
            await ws.send(orjson.dumps(message(i)).decode())
            i += 1
        done.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader, 30)
    return {"sent": sent, "calls": sent}


async def pace(i: int, t0: float, rate: float) -> None:
    """Open-loop pacing: message ``i`` leaves no earlier than ``t0 + i / rate`` (``rate`` 0: no pacing)."""
    if rate > 0 and (ahead := t0 + i / rate - time.perf_counter()) > 0:
        await asyncio.sleep(ahead)


async def run_case(
    port: int, tokens: tuple[str, str], clients: int, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/ws?token={tokens[0]}"
    admin_url = f"ws://127.0.0.1:{port}/ws?token={tokens[1]}"
    receivers = [Receiver() for _ in range(clients)]
    ready, started = asyncio.Event(), [0, clients]
    compression = None if args.no_compression else "deflate"
    tasks = [asyncio.create_task(r.run(url, ready, started, compression)) for r in receivers]
    await asyncio.wait_for(ready.wait(), 60)
    rng = np.random.default_rng(clients)
    load0 = os.getloadavg()
    t0 = time.time()
    if mode == "rest":
        emitted = await emit_rest(f"http://127.0.0.1:{port}", args.seconds, args.batch, rng, args.rate)
    elif mode == "ws":
        emitted = await emit_ws(url, args.seconds, args.window, args.rate, rng)
    else:
        emitted = await emit_fanout(admin_url, args.seconds, args.window, args.rate)
    expected = emitted["sent"] * clients
    deadline = time.monotonic() + 60
    while sum(r.count for r in receivers) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    t1 = max(r.last for r in receivers)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    received = sum(r.count for r in receivers)
    lat = np.concatenate([np.asarray(r.latency) for r in receivers]) if received else np.zeros(1)
    row = {
        "clients": clients,
        "mode": mode,
        "signals": emitted["sent"],
        "delivered": received,
        "expected": expected,
        "seconds": t1 - t0,
        "delivered_per_s": received / (t1 - t0),
        "signals_per_s": emitted["sent"] / (t1 - t0),
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p99": float(np.percentile(lat, 99)),
        "latency_ms_max": float(lat.max()),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    row.update({k: v for k, v in emitted.items() if k not in ("sent",)})
    return row


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)  # this run's only: the server reads it from the environment
    tokens = (make_token(secret, "bench", "bot", ttl=3600), make_token(secret, "ops", "admin", ttl=3600))
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(secret, Path(tmp))
        rows = []
        try:
            for clients in args.clients:
                for mode in args.modes:
                    row = await run_case(port, tokens, clients, mode, args)
                    rows.append(row)
                    print(
                        f"{clients:>4} clients  {mode:<4}  {row['signals']:>8,} signals  "
                        f"{row['delivered_per_s']:>10,.0f} delivered ev/s  "
                        f"p50 {row['latency_ms_p50']:7.2f} ms  p99 {row['latency_ms_p99']:8.2f} ms  "
                        f"({row['delivered']:,}/{row['expected']:,} delivered, load {row['load_after'][0]})",
                        flush=True,
                    )
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
    return {
        "bench": "ws",
        "machine": machine(),
        "targets": {"clients": 10, "delivered_per_s": TARGET_RATE, "latency_ms_p99": TARGET_P99_MS},
        "seed_figure_ms": SEED_FIGURE_MS,
        "settings": {
            "seconds": args.seconds,
            "batch": args.batch,
            "window": args.window,
            "compression": not args.no_compression,
            "rate": args.rate,
        },
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--modes", nargs="+", default=["rest", "ws", "fanout"], choices=["rest", "ws", "fanout"]
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="emitting time per case")
    parser.add_argument("--batch", type=int, default=1000, help="rows per REST batch")
    parser.add_argument("--window", type=int, default=64, help="socket messages in flight")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="messages (rest: requests) per s (0: as fast as acked)"
    )
    parser.add_argument("--no-compression", action="store_true", help="clients do not negotiate deflate")
    parser.add_argument("--json", default=str(Path(__file__).parents[1] / "benchmarks/results/bench_ws.json"))
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(main_async(args))
    ten = [r for r in result["rows"] if r["clients"] == 10]
    for r in ten:
        ok = r["delivered_per_s"] >= TARGET_RATE and r["latency_ms_p99"] <= TARGET_P99_MS
        print(
            f"target (10 clients, {r['mode']}): >= {TARGET_RATE:,} ev/s and p99 <= {TARGET_P99_MS} ms: "
            f"{r['delivered_per_s']:,.0f} ev/s, p99 {r['latency_ms_p99']:.2f} ms -> "
            f"{'met' if ok else 'NOT met'}"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
