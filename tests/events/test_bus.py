"""Tests of neurograph.events: taxonomy, patterns, filters, subscriptions and the bus."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurograph.errors import InvalidQuery
from neurograph.events import (
    CHANNELS,
    TAXONOMY,
    Event,
    EventBus,
    EventTypeRegistry,
    compile_filter,
    match_pattern,
)

CHAT = "signal.input.external.text.chat"

EVENT = Event(
    channel="signals",
    event_type=CHAT,
    timestamp=100.0,
    data={
        "is_novel": True,
        "score": 0.7,
        "text": "hello world",
        "tags": ["a", "b"],
        "neighbors": [{"token_id": 7, "distance": 0.1}, {"token_id": 9, "distance": 0.4}],
        "meta": {"source": "chat", "depth": 2},
    },
)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


async def settle(condition=lambda: False, timeout: float = 2.0) -> None:
    """Lets the running loop work until ``condition()`` holds (or a few turns when it never does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(10):
        await asyncio.sleep(0)
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------------------------------------- filters

OPERATOR_CASES = [
    ("$eq", {"data.score": {"$eq": 0.7}}, {"data.score": {"$eq": 0.5}}),
    ("$ne", {"channel": {"$ne": "metrics"}}, {"channel": {"$ne": "signals"}}),
    ("$gt", {"data.score": {"$gt": 0.5}}, {"data.score": {"$gt": 0.9}}),
    ("$gte", {"data.score": {"$gte": 0.7}}, {"data.score": {"$gte": 0.71}}),
    ("$lt", {"timestamp": {"$lt": 200}}, {"timestamp": {"$lt": 100}}),
    ("$lte", {"timestamp": {"$lte": 100}}, {"timestamp": {"$lte": 99.9}}),
    ("$in", {"channel": {"$in": ["signals", "metrics"]}}, {"channel": {"$in": ["logs", "status"]}}),
    ("$nin", {"channel": {"$nin": ["logs"]}}, {"channel": {"$nin": ["signals", "logs"]}}),
    ("$contains", {"data.text": {"$contains": "world"}}, {"data.text": {"$contains": "planet"}}),
    ("$regex", {"data.text": {"$regex": r"^hel+o\b"}}, {"data.text": {"$regex": r"^world"}}),
    (
        "$wildcard",
        {"event_type": {"$wildcard": "signal.input.*"}},
        {"event_type": {"$wildcard": "signal.anomaly.*"}},
    ),
]


@pytest.mark.parametrize("expected", [True, False], ids=["true", "false"])
@pytest.mark.parametrize(
    ("op", "true_spec", "false_spec"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES]
)
def test_each_operator(op: str, true_spec: dict, false_spec: dict, expected: bool) -> None:
    spec = true_spec if expected else false_spec
    assert compile_filter(spec)(EVENT) is expected


FILTER_CASES = {
    "bare value is equality": ({"channel": "signals"}, True),
    "bare value mismatch": ({"channel": "metrics"}, False),
    "bare bool on data": ({"data.is_novel": True}, True),
    "several keys are ANDed": ({"channel": "signals", "data.is_novel": True}, True),
    "several keys, one false": ({"channel": "signals", "data.is_novel": False}, False),
    "several operators on one field": ({"data.score": {"$gt": 0.5, "$lt": 0.8}}, True),
    "several operators, one false": ({"data.score": {"$gt": 0.5, "$lt": 0.6}}, False),
    "nested data field": ({"data.meta.source": "chat"}, True),
    "list index field": ({"data.neighbors.0.token_id": 7}, True),
    "second list index": ({"data.neighbors.1.distance": {"$gt": 0.3}}, True),
    "list index out of range": ({"data.neighbors.5.token_id": 7}, False),
    "$contains on a list": ({"data.tags": {"$contains": "a"}}, True),
    "$contains on a list, absent": ({"data.tags": {"$contains": "z"}}, False),
    "$contains on a mapping key": ({"data.meta": {"$contains": "depth"}}, True),
    "$and all true": ({"$and": [{"channel": "signals"}, {"data.score": {"$gte": 0.7}}]}, True),
    "$and one false": ({"$and": [{"channel": "signals"}, {"data.score": {"$gt": 0.7}}]}, False),
    "$or one true": ({"$or": [{"channel": "logs"}, {"data.is_novel": True}]}, True),
    "$or none true": ({"$or": [{"channel": "logs"}, {"data.is_novel": False}]}, False),
    "$not of false": ({"$not": {"channel": "logs"}}, True),
    "$not of true": ({"$not": {"channel": "signals"}}, False),
    "field-level $not": ({"data.score": {"$not": {"$gt": 0.9}}}, True),
    "nested combinators": (
        {"$or": [{"$and": [{"channel": "signals"}, {"$not": {"data.is_novel": True}}]}, {"data.score": 0.7}]},
        True,
    ),
    "$wildcard exact type": ({"event_type": {"$wildcard": CHAT}}, True),
    "$wildcard glob on text": ({"data.text": {"$wildcard": "hel?o *"}}, True),
    "$wildcard glob mismatch": ({"data.text": {"$wildcard": "world*"}}, False),
    "$regex precompiled": ({"data.text": {"$regex": re.compile("WORLD", re.I)}}, True),
    "whole data mapping": ({"data.meta": {"source": "chat", "depth": 2}}, True),
    "empty filter matches all": ({}, True),
    "missing data field, $eq": ({"data.nope": 1}, False),
    "missing data field, $ne": ({"data.nope": {"$ne": 1}}, False),
    "missing data field, $nin": ({"data.nope": {"$nin": [1]}}, False),
    "top-level $not selects missing": ({"$not": {"data.nope": {"$eq": 1}}}, True),
    "path through a scalar": ({"data.score.x": 1}, False),
    "incomparable types do not match": ({"data.text": {"$gt": 3}}, False),
    "$contains on a number": ({"data.score": {"$contains": 7}}, False),
    "$regex on a number": ({"data.score": {"$regex": "7"}}, False),
}


@pytest.mark.parametrize(("spec", "expected"), list(FILTER_CASES.values()), ids=list(FILTER_CASES))
def test_filter_table(spec: dict, expected: bool) -> None:
    assert compile_filter(spec)(EVENT) is expected


BAD_FILTERS = {
    "unknown top-level field": ({"colour": "red"}, "colour"),
    "sub-field of a scalar field": ({"channel.name": "x"}, "channel.name"),
    "empty data key": ({"data..x": 1}, "data..x"),
    "unknown operator": ({"data.score": {"$gtx": 1}}, "$gtx"),
    "unknown top-level operator": ({"$nor": [{"channel": "signals"}]}, "$nor"),
    "operator nested under $and": ({"$and": [{"data.x": {"$exists": True}}]}, "$exists"),
    "$in needs a list": ({"channel": {"$in": "signals"}}, "$in"),
    "$and needs a list": ({"$and": {"channel": "signals"}}, "$and"),
    "bad regular expression": ({"data.text": {"$regex": "(unclosed"}}, "(unclosed"),
    "bad pattern": ("signal.input*", "signal.input*"),
    "one segment is not a type": ("signal", "signal"),
    "not a dict": (42, "42"),
    "a list is not a filter": (["channel"], "['channel']"),
}


@pytest.mark.parametrize(("spec", "named"), list(BAD_FILTERS.values()), ids=list(BAD_FILTERS))
def test_bad_filters_name_the_culprit(spec, named: str) -> None:
    with pytest.raises(InvalidQuery, match=re.escape(named)):
        compile_filter(spec)


def test_filters_are_checked_when_subscribing(bus: EventBus) -> None:
    with pytest.raises(InvalidQuery, match="colour"):
        bus.subscribe({"colour": "red"})
    assert bus.stats()["subscribers"] == 0


def test_filter_on_live_events(bus: EventBus) -> None:
    sub = bus.subscribe({"data.is_novel": True, "data.anomaly_score": {"$gte": 0.5}})
    bus.publish("signals", CHAT, {"is_novel": True, "anomaly_score": 0.9})
    bus.publish("signals", CHAT, {"is_novel": True, "anomaly_score": 0.1})
    bus.publish("signals", CHAT, {"is_novel": False, "anomaly_score": 0.9})
    bus.publish("signals", CHAT, {"is_novel": True})  # the field is missing: no match, no error
    assert [e.data["anomaly_score"] for e in sub.drain()] == [0.9]
    assert bus.errors == 0


# ------------------------------------------------------------------------------------ patterns, taxonomy

PATTERN_CASES = [
    ("signal.input.external.text.chat", True),
    ("signal.input.internal.thought", True),
    ("signal.input.x", True),
    ("signal.input", False),
    ("signal.inputs.x", False),
    ("signal.anomaly.novelty", False),
    ("xsignal.input.x", False),
]


@pytest.mark.parametrize(("event_type", "expected"), PATTERN_CASES, ids=[c[0] for c in PATTERN_CASES])
def test_wildcard_is_dot_aware(event_type: str, expected: bool) -> None:
    assert match_pattern("signal.input.*", event_type) is expected


def test_star_and_exact_patterns() -> None:
    assert all(match_pattern("*", t) for t in TAXONOMY)
    assert match_pattern(CHAT, CHAT)
    assert not match_pattern(CHAT, CHAT + ".more")
    assert match_pattern("signal.*", "signal.anomaly.novelty")


@pytest.mark.parametrize("pattern", ["signal.input*", "*.input", "Signal.*", "signal", "", "signal.**", 3])
def test_malformed_patterns(pattern) -> None:
    with pytest.raises(InvalidQuery, match=re.escape(repr(pattern))):
        match_pattern(pattern, CHAT)


SEGMENT = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@given(prefix=st.lists(SEGMENT, min_size=1, max_size=3), name=st.lists(SEGMENT, min_size=2, max_size=5))
def test_wildcard_means_strictly_under_the_prefix(prefix: list[str], name: list[str]) -> None:
    event_type = ".".join(name)
    expected = len(name) > len(prefix) and name[: len(prefix)] == prefix
    assert match_pattern(".".join(prefix) + ".*", event_type) is expected


def test_wildcard_subscription_receives_types_registered_later(bus: EventBus) -> None:
    sub = bus.subscribe("custom.*")
    assert "custom.sensor.reading_taken" not in bus.registry
    bus.publish("signals", "custom.sensor.reading_taken", {"x": 1})
    assert "custom.sensor.reading_taken" in bus.registry
    assert [e.event_type for e in sub.drain()] == ["custom.sensor.reading_taken"]
    assert bus.registry.matching("custom.*") == ["custom.sensor.reading_taken"]


def test_registry_holds_every_leaf_of_the_taxonomy() -> None:
    registry = EventTypeRegistry()
    assert len(registry) == len(TAXONOMY) == len(set(TAXONOMY)) == 41
    for leaf in [
        "signal.input.external.text.chat",
        "signal.input.external.text.transcription",
        "signal.input.external.audio.alert",
        "signal.input.external.vision.gesture",
        "signal.input.external.environment.humidity",
        "signal.input.internal.memory_recall",
        "signal.input.system.resource.memory_critical",
        "signal.input.system.lifecycle.shutdown",
        "signal.input.system.timer.heartbeat",
        "signal.activation.pattern_match",
        "signal.anomaly.unexpected",
        "signal.meta.subscription.removed",
        "signal.meta.sensor.unregistered",
    ]:
        assert leaf in registry
    for prefix in ["signal", "signal.input", "signal.input.external", "signal.meta.subscription"]:
        assert prefix not in registry
    assert len(registry.matching("signal.input.external.*")) == 16
    assert registry.matching("signal.anomaly.*") == sorted(
        f"signal.anomaly.{x}" for x in ("novelty", "contradiction", "outlier", "unexpected")
    )
    assert list(registry) == sorted(TAXONOMY)
    assert "41 types" in repr(registry)


def test_registry_register_is_idempotent_and_validates() -> None:
    registry = EventTypeRegistry()
    assert registry.register("field.born") == "field.born"
    registry.register("field.born")
    assert len(registry) == 42
    for bad in [
        "Field.born",
        "field",
        "field..born",
        "field.1born",
        "field.born.",
        "field born.x",
        "f." + "x" * 127,
    ]:
        with pytest.raises(InvalidQuery, match=re.escape(repr(bad))):
            registry.register(bad)
    with pytest.raises(InvalidQuery):
        registry.register(42)  # type: ignore[arg-type]
    assert len(registry) == 42
    assert 42 not in registry


# ------------------------------------------------------------------------------------------------- the bus


def test_publish_returns_the_event_and_validates(bus: EventBus) -> None:
    ev = bus.publish("metrics", "metric.energy.sampled", {"total": 1.5})
    assert isinstance(ev, Event) and ev.channel == "metrics" and ev.data == {"total": 1.5}
    assert ev.to_dict() == {
        "channel": "metrics",
        "event_type": "metric.energy.sampled",
        "timestamp": ev.timestamp,
        "data": {"total": 1.5},
    }
    with pytest.raises(InvalidQuery, match="'telemetry'"):
        bus.publish("telemetry", CHAT, {})
    with pytest.raises(InvalidQuery, match=re.escape("'Bad.Type'")):
        bus.publish("signals", "Bad.Type", {})
    assert bus.stats()["published"] == 1
    assert bus.publish("logs", "log.line.written").data == {}


def test_channels_restrict_a_subscription(bus: EventBus) -> None:
    sub = bus.subscribe("*", channels=["metrics", "status"])
    one = bus.subscribe("*", channels="logs")
    for channel in CHANNELS:
        bus.publish(channel, "test.thing.happened", {"channel": channel})
    assert [e.channel for e in sub.drain()] == ["metrics", "status"]
    assert [e.channel for e in one.drain()] == ["logs"]
    with pytest.raises(InvalidQuery, match="'telemetry'"):
        bus.subscribe("*", channels=["metrics", "telemetry"])
    with pytest.raises(InvalidQuery, match="maxsize"):
        bus.subscribe("*", maxsize=0)


def test_has_subscribers_follows_subscriptions(bus: EventBus) -> None:
    assert not bus.has_subscribers("signals", CHAT)
    sub = bus.subscribe("signal.input.*", channels="signals")
    assert bus.has_subscribers("signals", CHAT)
    assert not bus.has_subscribers("signals", "signal.anomaly.novelty")
    assert not bus.has_subscribers("metrics", CHAT)
    assert not bus.has_subscribers("nowhere", CHAT)
    sub.unsubscribe()
    assert not bus.has_subscribers("signals", CHAT)


def test_filter_subscriptions_are_routed_by_their_event_type_condition(bus: EventBus) -> None:
    bus.subscribe({"event_type": {"$wildcard": "signal.anomaly.*"}, "data.score": {"$gt": 0.5}})
    assert bus.has_subscribers("signals", "signal.anomaly.outlier")
    assert not bus.has_subscribers("signals", CHAT)
    bus.subscribe({"data.score": {"$gt": 0.5}})  # may match any type
    assert bus.has_subscribers("signals", CHAT)


def test_lazy_data_is_built_only_for_listeners(bus: EventBus) -> None:
    calls = []

    def build() -> dict:
        calls.append(1)
        return {"payload": "heavy"}

    assert bus.publish("signals", CHAT, build) is None
    assert calls == []
    sub = bus.subscribe("signal.anomaly.*")
    assert bus.publish("signals", CHAT, build) is None  # a subscriber, but not routed to this type
    assert calls == []
    sub.close()
    sub = bus.subscribe(CHAT)
    ev = bus.publish("signals", CHAT, build)
    assert calls == [1] and ev is not None and ev.data == {"payload": "heavy"}
    assert sub.drain() == [ev]


def test_a_raising_subscriber_affects_nobody(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    seen_before, seen_after = [], []
    bus.subscribe("*", seen_before.append)

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bad = bus.subscribe("*", broken)
    bus.subscribe("*", seen_after.append)
    with caplog.at_level(logging.ERROR, logger="neurograph.events"):
        ev = bus.publish("signals", CHAT, {"x": 1})
        ev2 = bus.publish("signals", CHAT, {"x": 2})
    assert seen_before == [ev, ev2] and seen_after == [ev, ev2]
    assert bus.errors == 2 and bad.errors == 2
    assert bus.stats()["errors"] == 2
    assert "subscriber bug" in caplog.text


def test_subscription_context_manager_and_repr(bus: EventBus) -> None:
    with bus.subscribe("signal.input.*", channels="signals") as sub:
        assert bus.stats()["subscribers"] == 1
        bus.publish("signals", CHAT, {})
        text = repr(sub)
        assert "signal.input.*" in text and "delivered=1" in text and "signals" in text
    assert sub.closed and bus.stats()["subscribers"] == 0
    bus.publish("signals", CHAT, {})
    assert sub.delivered == 1
    assert "published=2" in repr(bus)
    assert "signal.input.*" in repr(compile_filter("signal.input.*"))


# ------------------------------------------------------------------------------------------ async iterators


async def test_iterator_keeps_the_newest_under_overload(bus: EventBus) -> None:
    maxsize = 10
    sub = bus.subscribe("*", maxsize=maxsize)
    for i in range(5 * maxsize):
        bus.publish("signals", CHAT, {"i": i})
    assert sub.dropped == 4 * maxsize
    assert bus.stats()["dropped"] == 4 * maxsize
    received = [(await anext(sub)).data["i"] for _ in range(maxsize)]
    assert received == list(range(4 * maxsize, 5 * maxsize))
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(sub)
    assert [e async for e in sub] == []


async def test_async_for_ends_when_closed_while_waiting(bus: EventBus) -> None:
    sub = bus.subscribe("*")
    received = []

    async def consume() -> None:
        async for event in sub:
            received.append(event.data["i"])

    task = asyncio.create_task(consume())
    for i in range(3):
        bus.publish("signals", CHAT, {"i": i})
        await asyncio.sleep(0)
    await settle(lambda: len(received) == 3)
    sub.close()
    await asyncio.wait_for(task, timeout=2)
    assert received == [0, 1, 2]


async def test_publishing_from_another_thread_wakes_the_iterator(bus: EventBus) -> None:
    sub = bus.subscribe("*")
    waiting = asyncio.create_task(asyncio.wait_for(anext(sub), timeout=5))
    await asyncio.sleep(0.01)  # the consumer is now waiting

    def publish_from_thread() -> None:
        for i in range(100):
            bus.publish("signals", CHAT, {"i": i})

    thread = threading.Thread(target=publish_from_thread)
    thread.start()
    first = await waiting
    thread.join()
    assert first.data["i"] == 0
    rest = [(await asyncio.wait_for(anext(sub), timeout=5)).data["i"] for _ in range(99)]
    assert rest == list(range(1, 100))


def test_drain_without_a_loop(bus: EventBus) -> None:
    sub = bus.subscribe("signal.anomaly.*", maxsize=3)
    for i in range(5):
        bus.publish("signals", "signal.anomaly.outlier", {"i": i})
    assert [e.data["i"] for e in sub.drain()] == [2, 3, 4]
    assert sub.drain() == [] and sub.dropped == 2


def test_a_callback_subscription_is_not_iterable(bus: EventBus) -> None:
    sub = bus.subscribe("*", lambda event: None)
    with pytest.raises(TypeError, match="callback"):
        asyncio.run(anext(sub))


# ------------------------------------------------------------------------------------------ async callbacks


async def test_async_callbacks_are_scheduled_on_the_running_loop(bus: EventBus) -> None:
    received = []

    async def on_event(event: Event) -> None:
        await asyncio.sleep(0)
        received.append(event.data["i"])

    bus.subscribe("*", on_event)
    for i in range(3):
        bus.publish("signals", CHAT, {"i": i})
    assert received == []  # scheduled, not yet run
    await settle(lambda: len(received) == 3)
    assert received == [0, 1, 2]


async def test_a_raising_async_callback_is_counted(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    received = []

    async def broken(event: Event) -> None:
        raise ValueError("async bug")

    bus.subscribe("*", broken)
    bus.subscribe("*", received.append)
    with caplog.at_level(logging.ERROR, logger="neurograph.events"):
        bus.publish("signals", CHAT, {})
        await settle(lambda: bus.errors == 1)
    assert bus.errors == 1 and len(received) == 1
    assert "async bug" in caplog.text


def test_async_callbacks_without_a_loop_run_to_completion(bus: EventBus) -> None:
    received = []

    async def on_event(event: Event) -> None:
        await asyncio.sleep(0)
        received.append(event.event_type)

    async def broken(event: Event) -> None:
        raise ValueError("async bug")

    bus.subscribe("*", on_event)
    bus.subscribe("*", broken)
    bus.publish("signals", CHAT, {})
    assert received == [CHAT]
    assert bus.errors == 1
