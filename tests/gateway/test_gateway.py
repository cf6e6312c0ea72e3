"""The gateway: sensor registry, push_text / push_numeric / push_vector, batches, errors, bus events."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from neurograph.errors import InvalidSignal
from neurograph.events import EventBus
from neurograph.gateway import (
    Gateway,
    HashedTermEncoder,
    NumericEncoder,
    Sensor,
    SensorRegistry,
    SignalBatch,
    SignalEvent,
    builtin_sensors,
)

CHAT = "signal.input.external.text.builtin.text_chat"


def hashed_gateway() -> Gateway:
    """A gateway whose chat sensor encodes with ``hashed`` (exact, model-free vectors), not ``auto``."""
    gw = Gateway()
    chat = gw.sensors.get("builtin.text_chat")
    gw.sensors.register(dataclasses.replace(chat, encoder="hashed"), replace=True)
    return gw


@pytest.fixture
def gw() -> Gateway:
    return hashed_gateway()


def test_builtin_sensors_priorities_and_event_types():
    sensors = {s.name: s for s in builtin_sensors()}
    assert {name: s.priority for name, s in sensors.items()} == {
        "builtin.text_chat": 200,
        "builtin.system_monitor": 100,
        "builtin.timer": 50,
    }
    assert sensors["builtin.text_chat"].event_type == CHAT
    assert (
        sensors["builtin.system_monitor"].event_type == "signal.input.system.resource.builtin.system_monitor"
    )
    assert sensors["builtin.timer"].event_type == "signal.input.system.timer.builtin.timer"
    assert [s.name for s in SensorRegistry()] == [
        "builtin.text_chat",
        "builtin.system_monitor",
        "builtin.timer",
    ]
    assert len(SensorRegistry(builtins=False)) == 0


def test_push_text_builds_the_signal_event(gw):
    ev = gw.push_text("Hello world", user_id=7, chat_id="c1", tags=["greeting"], metadata={"lang": "en"})
    assert isinstance(ev, SignalEvent)
    assert ev.event_type == CHAT and ev.sensor == "builtin.text_chat" and ev.kind == "concept"
    assert ev.priority == 200 and ev.urgency == pytest.approx(200 / 255)
    assert ev.tags == ("text", "chat", "greeting") and ev.tick == 0
    assert (ev.user_id, ev.chat_id, dict(ev.metadata), ev.payload) == (7, "c1", {"lang": "en"}, "Hello world")
    np.testing.assert_array_equal(ev.vector, HashedTermEncoder().encode("Hello world"))
    data = json.loads(json.dumps(ev.to_dict()))
    assert data["vector"] == ev.vector.tolist() and data["tags"] == ["text", "chat", "greeting"]
    assert "urgency=0.784" in repr(ev)


def test_tick_grows_by_one_per_push_and_by_b_per_batch(gw):
    assert [gw.push_text("a").tick for _ in range(3)] == [0, 1, 2]
    assert gw.push_numeric(50.0).tick == 3
    assert gw.push_numeric(10.0, sensor="builtin.timer").tick == 4
    batch = gw.push_texts(["x", "y", "z"])
    np.testing.assert_array_equal(batch.ticks, [5, 6, 7])
    assert gw.push_text("b").tick == 8 and gw.tick == 9
    assert gw.stats()["signals"] == {"builtin.text_chat": 7, "builtin.system_monitor": 1, "builtin.timer": 1}


def test_priority_override_and_urgency(gw):
    ev = gw.push_text("x", priority=255)
    assert (ev.priority, ev.urgency) == (255, 1.0)
    assert gw.push_text("x", priority=np.int64(0)).urgency == 0.0
    assert (
        gw.push_numeric(1.0).priority == 100 and gw.push_numeric(1.0, sensor="builtin.timer").priority == 50
    )


@pytest.mark.parametrize("priority", [256, -1, 1.5, "high", True])
def test_bad_priority_is_refused_and_the_tick_does_not_move(gw, priority):
    with pytest.raises(InvalidSignal) as err:
        gw.push_text("x", priority=priority)
    assert err.value.field == "priority" and gw.tick == 0


def test_unknown_and_disabled_sensors_are_errors_naming_them(gw):
    with pytest.raises(InvalidSignal, match=r"'lab\.nope'") as err:
        gw.push_text("x", sensor="lab.nope")
    assert err.value.field == "sensor" and "not registered" in str(err.value)
    gw.sensors.disable("builtin.text_chat")
    with pytest.raises(InvalidSignal, match="disabled"):
        gw.push_text("x")
    with pytest.raises(InvalidSignal, match="disabled"):
        gw.push_texts(["x"])
    assert gw.tick == 0
    gw.sensors.enable("builtin.text_chat")
    assert gw.push_text("x").tick == 0
    assert "builtin.text_chat (disabled)" not in repr(gw.sensors)


def test_reading_kind_must_match_the_sensor(gw):
    with pytest.raises(InvalidSignal, match="reads numeric readings, not text"):
        gw.push_text("x", sensor="builtin.system_monitor")
    with pytest.raises(InvalidSignal, match="reads text readings, not numeric"):
        gw.push_numeric(1.0, sensor="builtin.text_chat")
    with pytest.raises(InvalidSignal) as err:
        gw.push_text(123)  # type: ignore[arg-type]
    assert err.value.field == "text" and gw.tick == 0


def test_custom_sensors_register_replace_and_unregister(gw):
    s = gw.register_sensor(
        "lab.thermometer",
        domain="external",
        modality="environment",
        priority=90,
        encoder={"name": "numeric", "low": -20, "high": 40},
        kind="sensor",
        tags=("lab",),
    )
    assert s.event_type == "signal.input.external.environment.lab.thermometer"
    ev = gw.push_numeric(10.0, sensor="lab.thermometer")
    assert ev.vector[0] == 0.0 and ev.priority == 90 and ev.kind == "sensor" and ev.tags == ("lab",)
    with pytest.raises(InvalidSignal, match="already registered"):
        gw.register_sensor("lab.thermometer")
    gw.sensors.register(s, replace=True, priority=10)
    assert gw.sensors["lab.thermometer"].priority == 10
    assert gw.sensors.unregister("lab.thermometer").name == "lab.thermometer"
    assert "lab.thermometer" not in gw.sensors
    with pytest.raises(InvalidSignal):
        gw.push_numeric(1.0, sensor="lab.thermometer")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "Bad Name"}, "sensor"),
        ({"name": "a." + "b" * 130}, "sensor"),
        ({"name": "lab.x", "domain": "outer"}, "domain"),
        ({"name": "lab.x", "modality": "two.parts"}, "modality"),
        ({"name": "lab.x", "priority": 300}, "priority"),
        ({"name": "lab.x", "kind": "gizmo"}, "kind"),
        ({"name": "lab.x", "encoder": "word2vec"}, "encoder"),
        ({"name": "lab.x", "tags": (1,)}, "tags"),
    ],
)
def test_malformed_sensors_are_refused(fields, field):
    with pytest.raises(InvalidSignal) as err:
        Sensor(**fields)
    assert err.value.field == field


def test_push_vector_takes_eight_numbers_as_they_are(gw):
    gw.register_sensor("lab.probe", modality="vector", encoder="passthrough", priority=120)
    v = [0.1, -0.2, 0.3, 0, 0, 0, 0, 1.5]
    ev = gw.push_vector(v, sensor="lab.probe")
    np.testing.assert_array_equal(ev.vector, np.float32(v))
    assert ev.event_type == "signal.input.external.vector.lab.probe" and ev.priority == 120
    with pytest.raises(InvalidSignal, match="8 numbers"):
        gw.push_vector([1, 2, 3], sensor="lab.probe")
    with pytest.raises(TypeError):
        gw.push_vector(v)  # type: ignore[call-arg]  # the sensor is required
    batch = gw.push_vectors(np.zeros((4, 8)), sensor="lab.probe", priority=[1, 2, 3, 4])
    assert len(batch) == 4 and batch.priorities.tolist() == [1, 2, 3, 4]


def test_batches_match_single_pushes(gw):
    texts = ["hello world", "Hello, World!", "", "other things"]
    batch = gw.push_texts(texts, user_id=3, tags="bulk")
    assert isinstance(batch, SignalBatch) and len(batch) == 4 and batch.event_type == CHAT
    single = hashed_gateway()
    for i, text in enumerate(texts):
        ev = single.push_text(text, user_id=3, tags=["bulk"])
        row = batch[i]
        np.testing.assert_array_equal(row.vector, ev.vector)
        assert (row.tick, row.priority, row.tags, row.user_id, row.payload) == (
            ev.tick,
            ev.priority,
            ev.tags,
            ev.user_id,
            ev.payload,
        )
    assert batch[-1].tick == 3 and [e.tick for e in batch] == [0, 1, 2, 3]
    np.testing.assert_allclose(batch.urgency, 200 / 255)
    numerics = gw.push_numerics([[10.0, 20.0], [30.0, 40.0]])
    np.testing.assert_array_equal(
        numerics.vectors[:, :2], NumericEncoder(0, 100).encode_batch([[10, 20], [30, 40]])[:, :2]
    )
    with pytest.raises(InvalidSignal):
        gw.push_texts(["a", "b"], priority=[1, 2, 3])
    with pytest.raises(IndexError):
        batch[4]


def test_registrations_are_published_on_the_attached_bus():
    bus = EventBus()
    seen = []
    bus.subscribe("signal.meta.sensor.*", seen.append, channels="status")
    gw = Gateway()
    gw.register_sensor("lab.quiet")  # no bus yet: nothing published
    gw.attach(bus)
    gw.register_sensor("lab.loud")
    gw.sensors.unregister("lab.loud")
    assert [(e.event_type, e.data["sensor"]) for e in seen] == [
        ("signal.meta.sensor.registered", "lab.loud"),
        ("signal.meta.sensor.unregistered", "lab.loud"),
    ]
    assert "Gateway(tick=0" in repr(gw)
