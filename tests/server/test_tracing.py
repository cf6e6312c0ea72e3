"""One REST emit traced end to end: the span tree and JSON log lines carry one correlation id from the
request through the engine's emit to the broadcast of its event (issue 16).

Spans come from the OpenTelemetry SDK's in-memory exporter (``neurograph.telemetry.configure_tracing``);
log lines from ``neurograph.logs.configure(json=True)`` into a buffer, each parsed as JSON.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.server.conftest import token
from tests.server.wsutil import open_ws, ws_url

sdk = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
pytest.importorskip("structlog")
CHAT = "signal.input.external.text.chat"


def test_one_rest_emit_is_one_span_tree_and_one_correlation_id(srv, spans, log_lines) -> None:
    exporter, lines = spans, log_lines

    async def run() -> dict:
        ws, _ = await open_ws(ws_url(srv.ws, token=token("developer")))
        async with ws:  # a subscriber: the event is broadcast
            await ws.send({"type": "subscribe", "channels": ["signals"]})
            await ws.reply("subscribed")
            async with httpx.AsyncClient(base_url=srv.http) as http:
                r = await http.post(
                    "/api/v1/emit",
                    json={"event_type": CHAT, "vector": [0.31] * 8},
                    headers={"Authorization": f"Bearer {token('developer')}", "X-Correlation-ID": "rest-42"},
                )
            assert r.status_code == 200, r.text
            assert r.headers["X-Correlation-ID"] == "rest-42"
            (event,) = await ws.events(1, channel="signals")
            return {"reply": r.json(), "event": event}

    out = asyncio.run(run())
    assert out["event"]["data"]["correlation_id"] == "rest-42"
    spans = exporter.get_finished_spans()
    mine = [s for s in spans if s.attributes.get("neurograph.correlation_id") == "rest-42"]
    by_name = {s.name: s for s in mine}
    http, emit, broadcast = (
        by_name["neurograph.http"],
        by_name["neurograph.emit"],
        by_name["neurograph.broadcast"],
    )
    assert http.parent is None or http.parent.span_id not in {s.context.span_id for s in mine}  # the root
    assert emit.parent.span_id == http.context.span_id  # the engine's work, on its own thread
    assert broadcast.parent.span_id == emit.context.span_id  # handed to the subscribers from the emit
    assert len({s.context.trace_id for s in (http, emit, broadcast)}) == 1
    assert http.attributes["path"] == "/api/v1/emit" and http.attributes["http.status_code"] == 200
    assert broadcast.attributes["channel"] == "signals" and broadcast.attributes["sessions"] == 1

    records = [line for line in lines() if line.get("correlation_id") == "rest-42"]
    events = [line["event"] for line in records]
    assert events.index("emit") < events.index("broadcast")  # emit -> broadcast, one id
    assert "request" in events
    request = next(line for line in records if line["event"] == "request")
    assert request["status"] == 200 and request["path"] == "/api/v1/emit"
