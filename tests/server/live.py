"""A real uvicorn on 127.0.0.1 with a free port, in a thread of the test process (shared by the server,
client and CLI tests); :func:`spawn` runs ``neurograph serve`` as a subprocess instead."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from neurograph.engine import Engine
from neurograph.server import ServerConfig, create_app
from neurograph.server.run import uvicorn_config
from neurograph.server.state import Server

SECRET = "test-secret-" + "x" * 32  # a test-only HS256 secret (never a default of the code)


@dataclass
class Live:
    """A running server: its base URLs, the app state, the engine."""

    port: int
    server: Server

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def engine(self) -> Engine:
        return self.server.engine


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def live(engine: Engine | None = None, config: ServerConfig | None = None, **changes: Any) -> Iterator[Live]:
    """Serve ``engine`` with ``config`` (plus ``changes``) on a free loopback port until the block ends
    (no engine: the store at ``config.path``, else a fresh in-memory one)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = (config or ServerConfig()).replace(port=port, **changes)
    if engine is None and config.path is None:
        engine = Engine(seed=0)
    app = create_app(engine, config)  # None: the app opens config.path itself (and closes it)
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield Live(port, app.state.server)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def spawn(store: Path, config: Path | None, log: Path) -> tuple[subprocess.Popen, int]:
    """``neurograph serve --path store`` in a subprocess on a free port; returns it once ready."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    cmd = [sys.executable, "-m", "neurograph", "serve", "--port", str(port), "--path", str(store)]
    if config is not None:
        cmd += ["--config", str(config)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc, port
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")
        time.sleep(0.05)
