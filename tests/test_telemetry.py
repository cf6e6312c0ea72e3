"""Spans, correlation ids and JSON logs around the engine's work (:mod:`neurograph.telemetry`, ``logs``).

Spans are read from the OpenTelemetry SDK's in-memory exporter; log lines are parsed as JSON.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import neurograph as ng
from neurograph import telemetry

sdk = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
pytest.importorskip("structlog")
CHAT = "signal.input.external.text.chat"


def test_engine_operations_make_spans_with_their_results(spans) -> None:
    eng = ng.Engine(seed=0)
    with telemetry.correlation("req-1"):
        r = eng.emit(CHAT, [0.1] * 8)
    eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-1, 1, (50, 8)))
    eng.step(2)
    eng.hierarchy()
    got = {s.name: s for s in spans.get_finished_spans()}
    assert set(got) >= {
        "neurograph.emit",
        "neurograph.emit_batch",
        "neurograph.step",
        "neurograph.hierarchy.rebuild",
    }
    emit = got["neurograph.emit"]
    assert emit.attributes["neurograph.token_id"] == r.token_id
    assert emit.attributes["neurograph.correlation_id"] == "req-1"
    assert emit.attributes["event_type"] == CHAT
    assert got["neurograph.emit_batch"].attributes["rows"] == 50
    assert got["neurograph.step"].attributes["steps"] == 2


def test_an_emit_through_engine_call_is_a_child_of_the_callers_span(spans) -> None:
    eng = ng.Engine(seed=0)

    async def handler() -> None:
        with telemetry.span("request", route="/api/v1/emit"), telemetry.correlation("req-7"):
            await eng.call(eng.emit, CHAT, [0.2] * 8)

    asyncio.run(handler())
    eng.close()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    parent, child = by_name["neurograph.request"], by_name["neurograph.emit"]
    assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id
    assert child.attributes["neurograph.correlation_id"] == "req-7"


def test_emits_log_json_lines_and_events_carry_the_correlation_id(log_lines) -> None:
    eng = ng.Engine(seed=0)
    seen = []
    eng.subscribe("signal.input.*", lambda ev: seen.append(ev.data))
    with telemetry.correlation("abc"):
        eng.emit(CHAT, [0.3] * 8)
    eng.emit(CHAT, [-0.3] * 8)
    lines = [line for line in log_lines() if line["event"] == "emit"]
    assert len(lines) == 2 and lines[0]["correlation_id"] == "abc" and "correlation_id" not in lines[1]
    assert lines[0]["logger"] == "neurograph.engine" and lines[0]["level"] == "debug"
    assert lines[0]["is_novel"] is True and lines[0]["token_id"] == 0
    assert seen[0]["correlation_id"] == "abc" and "correlation_id" not in seen[1]


def test_no_span_is_made_without_a_provider() -> None:
    with telemetry.span("emit") as s:
        assert s is None
