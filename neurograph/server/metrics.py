"""Prometheus metrics of one app, in a registry of its own (two apps in one process never collide).

Engine figures (``neurograph_tokens``, ``_edges``, ``_fields``, ``_signals_total``, ``_novel_total``,
``_cdna_version``) are read from the engine when ``/metrics`` is scraped (one call on the engine's worker
thread) and exposed by a custom collector; the emit latency (``neurograph_emit_seconds``, per call as the
server timed it, by ``via`` and ``mode``), the dynamics step duration (``neurograph_step_seconds``, from
the engine's ``dynamics.stepped`` events) and the energy (``neurograph_energy``) are instruments. Server
figures: ``neurograph_ws_connections``, ``neurograph_ws_messages_in_total{type}``,
``neurograph_ws_messages_out_total{type}``, ``neurograph_ws_subscriptions{channel}``,
``neurograph_ws_buffered_events``, ``neurograph_ws_rate_limited_total{type}``,
``neurograph_ws_slow_disconnects_total``, ``neurograph_server_errors_total{kind}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ServerMetrics"]

_LATENCY = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _EngineCollector(Collector):
    """Engine figures from the last snapshot taken by :meth:`ServerMetrics.refresh`."""

    def __init__(self) -> None:
        self.snapshot: Mapping[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        gauges = {
            "tokens": "alive tokens (every level)",
            "edges": "alive edges",
            "fields": "alive fields (tokens of level >= 1)",
            "cdna_version": "version of the CDNA in force",
            "tick": "engine tick (accepted signals)",
        }
        for key, doc in gauges.items():
            if key in s:
                yield GaugeMetricFamily(f"neurograph_{key}", doc, value=float(s[key]))
        for key, doc in {"signals": "accepted signals", "novel": "signals that made a new token"}.items():
            if key in s:
                yield CounterMetricFamily(f"neurograph_{key}", doc, value=float(s[key]))


class ServerMetrics:
    """The instruments of one app (module docstring); ``render()`` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.engine = _EngineCollector()
        r.register(self.engine)
        self.emit_seconds = Histogram(
            "neurograph_emit_seconds", "emit call latency as the server timed it", ["via", "mode"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "neurograph_step_seconds", "wall time of a dynamics step call", buckets=_LATENCY, registry=r
        )
        self.energy = Gauge("neurograph_energy", "total field energy after the last step", registry=r)
        self.connections = Gauge("neurograph_ws_connections", "open websocket connections", registry=r)
        self.messages_in = Counter(
            "neurograph_ws_messages_in", "client messages received, by type", ["type"], registry=r
        )
        self.messages_out = Counter(
            "neurograph_ws_messages_out", "messages sent to clients, by type", ["type"], registry=r
        )
        self.subscriptions = Gauge(
            "neurograph_ws_subscriptions", "sessions subscribed, per channel", ["channel"], registry=r
        )
        self.buffered = Gauge(
            "neurograph_ws_buffered_events", "events queued for clients plus kept for replay", registry=r
        )
        self.rate_limited = Counter(
            "neurograph_ws_rate_limited", "messages refused by a token bucket, by type", ["type"], registry=r
        )
        self.slow_disconnects = Counter(
            "neurograph_ws_slow_disconnects", "clients disconnected because their queue was full", registry=r
        )
        self.errors = Counter(
            "neurograph_server_errors", "errors answered or logged, by kind", ["kind"], registry=r
        )
        self._out_event = self.messages_out.labels("event")

    def sent_events(self, n: int) -> None:
        self._out_event.inc(n)

    def refresh(self, stats: Mapping[str, Any]) -> None:
        """Take a new engine snapshot (``Engine.stats()`` plus ``fields``) for the next exposition."""
        self.engine.snapshot = dict(stats)

    def render(self) -> bytes:
        return generate_latest(self.registry)
