"""REST, probes and /metrics against a real uvicorn: every route, typed errors, REST emits on ``signals``,
the Prometheus exposition parsed by ``prometheus_client``, and the engine's channels (status, logs,
metrics, connections) reaching subscribers."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import token
from tests.server.live import Live
from tests.server.wsutil import open_ws, ws_url

ADMIN = {"Authorization": f"Bearer {token('admin')}"}


@pytest.fixture
async def http(srv: Live) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=srv.http, timeout=30) as client:
        yield client


async def test_every_route(srv: Live, http: httpx.AsyncClient) -> None:
    one = await http.post("/api/v1/emit", json={"vector": [0.4] * 8, "priority": 250, "kind": "goal"})
    assert one.status_code == 200
    result = one.json()
    assert set(result) >= {"token_id", "is_novel", "neighbors", "anomaly_score", "processing_time_us"}
    vectors = np.random.default_rng(7).uniform(-0.5, 0.5, (20, 8)).tolist()
    batch = await http.post("/api/v1/emit/batch", json={"vectors": vectors, "priorities": 90})
    assert batch.status_code == 200 and batch.json()["count"] == 20
    tok = await http.get(f"/api/v1/tokens/{result['token_id']}")
    assert tok.status_code == 200 and tok.json()["kind"] == "goal"
    assert tok.json()["position"]["physical"] == pytest.approx(0.4, abs=1e-6)
    q = await http.get("/api/v1/query", params={"q": "find all tokens limit 5", "limit": 3})
    assert q.status_code == 200 and len(q.json()["rows"]) == 3 and q.json()["truncated"]
    await srv.server.engine.call(srv.engine.hierarchy)
    fields = await http.get("/api/v1/fields")
    assert fields.status_code == 200 and all(row["level"] >= 1 for row in fields.json()["rows"])
    cdna = await http.get("/api/v1/cdna")
    assert cdna.status_code == 200 and cdna.json()["hash"] == srv.engine.cdna.hash
    status = (await http.get("/api/v1/status")).json()
    assert status["engine"]["tokens"] == srv.engine.stats()["tokens"] and "connections" in status["server"]
    for probe in ("live", "ready", "startup"):
        assert (await http.get(f"/health/{probe}")).status_code == 200


async def test_typed_errors(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/emit", json={"vector": [0.1] * 8, "event_type": "Not A Type"})
    assert r.status_code == 422 and r.json()["error"] == "InvalidSignal" and r.json()["field"] == "event_type"
    r = await http.post("/api/v1/emit", content=b'{"vector": [NaN, 0, 0, 0, 0, 0, 0, 0]}')
    assert r.status_code == 422
    r = await http.post("/api/v1/emit", json={"vector": [0.1] * 8, "kind": "dragon"})
    assert r.status_code == 422 and r.json()["error"] == "InvalidSignal"
    r = await http.post("/api/v1/emit/batch", json={"vectors": [[0.1] * 8], "priorities": [1, 2]})
    assert r.status_code == 422 and r.json()["error"] == "InvalidSignal"
    r = await http.get("/api/v1/query", params={"q": "find some things"})
    assert r.status_code == 422 and "expected" in r.json()["message"]  # InvalidQuery or a subclass
    r = await http.get("/api/v1/tokens/987654321")
    assert r.status_code == 404 and r.json()["error"] == "UnknownToken"
    r = await http.post("/api/v1/emit", json={"vector": [0.1] * 8, "colour": "red"})  # unknown field
    assert r.status_code == 422


async def test_rest_emits_appear_on_signals(srv: Live, http: httpx.AsyncClient) -> None:
    ws, _ = await open_ws(ws_url(srv.ws, token=token("developer")))
    async with ws:
        await ws.send({"type": "subscribe", "channels": ["signals"]})
        await ws.reply("subscribed")
        one = (await http.post("/api/v1/emit", json={"vector": [-0.3] * 8})).json()
        vectors = np.random.default_rng(8).uniform(-0.5, 0.5, (6, 8)).tolist()
        many = (await http.post("/api/v1/emit/batch", json={"vectors": vectors})).json()
        got = await ws.events(7, channel="signals")
        assert [e["data"]["token_id"] for e in got] == [one["token_id"], *many["token_ids"]]
        assert [e["data"]["is_novel"] for e in got[1:]] == many["is_novel"]


async def test_labels_and_payloads_travel(srv: Live, http: httpx.AsyncClient) -> None:
    ws, _ = await open_ws(ws_url(srv.ws, token=token("developer")))
    async with ws:
        await ws.send({"type": "subscribe", "channels": ["signals"]})
        await ws.reply("subscribed")
        body = {"vector": [0.21] * 8, "label": "apple", "payload": {"colour": "red"}}
        assert (await http.post("/api/v1/emit", json=body)).status_code == 200
        (event,) = await ws.events(1, channel="signals")
        assert event["data"].get("label") == "apple"
        body = {"vectors": [[0.22] * 8], "labels": ["pear"], "payloads": [{"n": 1}]}
        assert (await http.post("/api/v1/emit/batch", json=body)).status_code == 200


async def test_metrics_parse_with_prometheus_client(srv: Live, http: httpx.AsyncClient) -> None:
    ws, _ = await open_ws(srv.ws)
    async with ws:
        await ws.send({"type": "subscribe", "channels": ["metrics"]})
        await ws.reply("subscribed")
        await http.post("/api/v1/emit", json={"vector": [0.31] * 8})
        await srv.server.engine.call(srv.engine.step, 3)
        text = (await http.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {f.name: f.samples[0].value for f in families.values() if f.samples}
    assert value["neurograph_tokens"] == srv.engine.stats()["tokens"] > 0
    assert {"neurograph_edges", "neurograph_fields", "neurograph_signals", "neurograph_energy"} <= set(
        families
    )
    assert families["neurograph_emit_seconds"].type == "histogram"
    assert families["neurograph_step_seconds"].type == "histogram"
    count = [s for s in families["neurograph_step_seconds"].samples if s.name.endswith("_count")]
    assert count and count[0].value >= 1
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("neurograph_ws_connections", ())] >= 1
    assert samples[("neurograph_ws_subscriptions", (("channel", "metrics"),))] >= 1
    assert samples[("neurograph_ws_messages_in_total", (("type", "subscribe"),))] >= 1
    for name in ("neurograph_ws_messages_out", "neurograph_ws_buffered_events", "neurograph_server_errors"):
        assert name in families


async def test_channels_fed_by_engine_and_server(srv: Live, http: httpx.AsyncClient) -> None:
    ws, _ = await open_ws(ws_url(srv.ws, token=token("admin")))
    async with ws:
        await ws.send({"type": "subscribe", "channels": ["metrics", "status", "logs", "connections"]})
        await ws.reply("subscribed")
        other, other_hello = await open_ws(srv.ws)  # a connection event
        await other.ws.close()
        r = await http.put("/api/v1/cdna", json={"decay_rate": 0.02}, headers=ADMIN)  # cdna.updated
        assert r.status_code == 200
        logging.getLogger("neurograph.server").warning("hello from the test")  # a log record
        wanted = {
            ("connections", "connection.opened"),
            ("connections", "connection.closed"),
            ("status", "cdna.updated"),
            ("logs", "log.warning"),
            ("metrics", "engine.stats"),
            ("metrics", "server.stats"),
            ("status", "server.health"),
        }
        seen: dict[tuple[str, str], dict] = {}
        while not wanted <= set(seen):
            for e in await ws.events(1):
                seen.setdefault((e["channel"], e["event_type"]), e)
        opened = seen[("connections", "connection.opened")]
        assert opened["data"]["client_id"] == other_hello["client_id"]
        assert seen[("logs", "log.warning")]["data"]["message"] == "hello from the test"
        assert seen[("metrics", "engine.stats")]["data"]["tokens"] >= 0
