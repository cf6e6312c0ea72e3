"""The state of one app: :class:`Server` (engine, auth, hub, metrics, background tasks, the emit path).

The engine lives in the same process and does its work on its own worker thread
(:meth:`Engine.call <neurograph.engine.Engine.call>`): the event loop only parses, routes and writes. An app
given an engine leaves it open at shutdown; an app that made its own (from ``config.engine`` and
``config.path``) closes it, which snapshots a persistent store.

:class:`Server` is the app's state (``app.state.server``): the engine, the :class:`~.auth.Authenticator`,
the :class:`~.hub.Hub`, the :class:`~.metrics.ServerMetrics`, and the emit path shared by REST and the
socket. Background tasks: the ``metrics`` / ``status`` ticker (every ``metrics_interval`` seconds, only
while someone listens) and the expiry of reconnection tokens. A logging handler forwards the records of
the ``neurograph`` and ``uvicorn.error`` loggers to the ``logs`` channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from neurograph.engine import Engine
from neurograph.errors import InvalidArgument
from neurograph.events import EventBus
from neurograph.server.auth import Authenticator
from neurograph.server.config import ServerConfig
from neurograph.server.hub import Hub
from neurograph.server.metrics import ServerMetrics

__all__ = ["DEFAULT_EVENT_TYPE", "Server"]

_log = logging.getLogger("neurograph.server")
DEFAULT_EVENT_TYPE = "signal.input.external.text.chat"


class _BusLogHandler(logging.Handler):
    """Forwards log records to the ``logs`` channel as ``log.<level>`` events (when someone listens)."""

    def __init__(self, bus: EventBus, level: str | int) -> None:
        super().__init__(level)
        self.bus = bus
        self._inside = threading.local()  # a record logged while publishing one is not forwarded

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._inside, "on", False):
            return
        event_type = f"log.{record.levelname.lower()}"
        self._inside.on = True
        try:
            if self.bus.has_subscribers("logs", event_type):
                data = {
                    "logger": record.name,
                    "level": record.levelname,
                    "message": record.getMessage(),
                    "time": record.created,
                }
                self.bus.publish("logs", event_type, data, timestamp=record.created)
        except Exception:
            self.handleError(record)
        finally:
            self._inside.on = False


def _emit_one(engine: Engine, msg: Mapping[str, Any]) -> dict[str, Any]:
    """One signal from a message (REST body or socket ``emit``), on the engine's thread."""
    kwargs = {key: msg[key] for key in ("kind", "label", "payload") if msg.get(key) is not None}
    priority = msg.get("priority", 128)
    result = engine.emit(msg.get("event_type", DEFAULT_EVENT_TYPE), msg.get("vector"), priority, **kwargs)
    return result.to_dict()


def _emit_many(engine: Engine, msg: Mapping[str, Any], max_batch: int) -> dict[str, Any]:
    """A batch from a message (``vectors`` ``[B, 8]``), on the engine's thread."""
    vectors = msg.get("vectors")
    if isinstance(vectors, list) and len(vectors) > max_batch:
        raise InvalidArgument("vectors", f"<{len(vectors)} rows>", f"a batch holds at most {max_batch} rows")
    kwargs = {key: msg[key] for key in ("kinds", "labels", "payloads") if msg.get(key) is not None}
    types = msg.get("event_types", msg.get("event_type", DEFAULT_EVENT_TYPE))
    batch = engine.emit_batch(types, vectors, msg.get("priorities", 128), **kwargs)
    return {
        "count": len(batch),
        "novel": int(batch.is_novel.sum()),
        "token_ids": batch.token_ids.tolist(),
        "is_novel": batch.is_novel.tolist(),
        "anomaly_scores": batch.anomaly_scores.tolist(),
        "processing_time_us": batch.processing_time_us,
    }


class Server:
    """The state of one app (module docstring).

    Args:
        engine: the engine to serve; ``None`` makes one from ``config`` at startup (and closes it at
            shutdown).
        config: the settings (:class:`~neurograph.server.config.ServerConfig`).
    """

    def __init__(self, engine: Engine | None, config: ServerConfig) -> None:
        self.config = config
        self.owns_engine = engine is None
        self.engine: Engine | None = engine
        self.auth = Authenticator(config)
        self.metrics = ServerMetrics()
        self.hub: Hub | None = None
        self.started = self.ready = False
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[Any]] = []
        self._log_handler: _BusLogHandler | None = None
        self._step_feed: Any = None
        self._loggers = ("neurograph", "uvicorn.error")

    # --- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.engine is None:
            options = dict(self.config.engine)
            if self.config.path is not None:
                options["path"] = self.config.path
            self.engine = await asyncio.to_thread(Engine, **options)
        eng = self.engine
        self.hub = Hub(eng.bus, self.config, self.metrics)
        self.hub.loop = asyncio.get_running_loop()
        self._step_feed = eng.bus.subscribe("dynamics.stepped", self._on_step, channels="metrics")
        self._log_handler = _BusLogHandler(eng.bus, self.config.log_level)
        for name in self._loggers:
            logging.getLogger(name).addHandler(self._log_handler)
        self._tasks = [asyncio.create_task(self._ticker()), asyncio.create_task(self._expiry())]
        self.started = self.ready = True
        self.started_at = time.time()
        eng.bus.publish("status", "server.started", {"time": self.started_at})

    async def stop(self) -> None:
        self.ready = False
        eng, hub = self.engine, self.hub
        if eng is not None:
            eng.bus.publish("status", "server.stopping", {"time": time.time()})
        if hub is not None:
            for session in list(hub.sessions.values()):
                if session.conn is not None:
                    session.conn.abort(1001, "server shutting down")
            await asyncio.sleep(0)  # let the close frames go
            hub.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._log_handler is not None:
            for name in self._loggers:
                logging.getLogger(name).removeHandler(self._log_handler)
        if self._step_feed is not None:
            self._step_feed.close()
        if eng is not None and self.owns_engine:
            await asyncio.to_thread(eng.close)

    def _on_step(self, event: Any) -> None:
        data = event.data
        if "wall_time" in data and "steps" in data:
            self.metrics.step_seconds.observe(float(data["wall_time"]))
        if "total_energy" in data:
            self.metrics.energy.set(float(data["total_energy"]))

    async def _ticker(self) -> None:
        """``engine.stats`` and ``server.stats`` on ``metrics``, ``server.health`` on ``status``."""
        bus = self.engine.bus
        while True:
            await asyncio.sleep(self.config.metrics_interval)
            try:
                if bus.has_subscribers("metrics", "engine.stats"):
                    bus.publish("metrics", "engine.stats", await self.engine_stats())
                if bus.has_subscribers("metrics", "server.stats"):
                    bus.publish("metrics", "server.stats", self.server_stats())
                if bus.has_subscribers("status", "server.health"):
                    bus.publish("status", "server.health", self.health())
            except Exception:
                self.metrics.errors.labels("ticker").inc()
                _log.exception("metrics ticker failed")

    async def _expiry(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.config.reconnect_ttl / 4))
            self.hub.expire()

    # --- figures ----------------------------------------------------------------------------------------
    async def engine_stats(self) -> dict[str, Any]:
        """``Engine.stats()`` plus ``fields`` (tokens of level >= 1), read on the engine's thread."""
        eng = self.engine

        def read() -> dict[str, Any]:
            stats = eng.stats()
            stats["fields"] = len(eng.query("find all fields"))
            return stats

        return await eng.call(read)

    def server_stats(self) -> dict[str, Any]:
        stats = self.hub.stats()
        stats["uptime_s"] = time.time() - self.started_at
        self.metrics.buffered.set(stats["buffered_events"])
        return stats

    def health(self) -> dict[str, Any]:
        return {
            "live": True,
            "ready": self.ready,
            "started": self.started,
            "uptime_s": time.time() - self.started_at,
            "connections": self.hub.stats()["connections"] if self.hub is not None else 0,
        }

    # --- the emit path shared by REST and the socket ----------------------------------------------------
    async def emit(self, msg: Mapping[str, Any], via: str) -> dict[str, Any]:
        """Emit one signal (``vector``) or a batch (``vectors``) from a message; returns the reply body.

        Raises:
            NeurographError: what the engine raised (bad input, quota), nothing changed.
        """
        eng = self.engine
        batch = "vectors" in msg
        t0 = time.perf_counter()
        if batch:
            out = await eng.call(_emit_many, eng, msg, self.config.max_batch)
        else:
            out = await eng.call(_emit_one, eng, msg)
        self.metrics.emit_seconds.labels(via, "batch" if batch else "single").observe(
            time.perf_counter() - t0
        )
        return out
