"""The action controller: rules, hot and cold paths, shutdown, failures, the bus, batches."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from neurograph.actions import (
    ACKNOWLEDGED,
    NOVEL_RESPONSE,
    Action,
    ActionController,
    ActionError,
    ActionRegistry,
    LazyRows,
    Rule,
    builtin_actions,
    default_rules,
    response_for,
)
from neurograph.emit.results import EmitResult
from neurograph.engine import Engine
from neurograph.errors import InvalidQuery
from neurograph.events import EventBus
from neurograph.gateway import Gateway

CHAT = "signal.input.external.text.builtin.text_chat"


def result(is_novel: bool = False, triggered: tuple[int, ...] = (), anomaly: float = 0.5) -> EmitResult:
    return EmitResult(
        token_id=1,
        is_novel=is_novel,
        neighbors=[],
        anomaly_score=anomaly,
        resonance=0.0,
        energy_delta=0.0,
        activation_spread=0,
        triggered_actions=list(triggered),
        processing_time_us=1.0,
    )


@pytest.fixture
def gw() -> Gateway:
    return Gateway()


def recorder(log: list[str], tag: str, fail: bool = False):
    def fn(ctx):
        log.append(f"{tag}:{ctx.signal.tick}")
        if fail:
            raise RuntimeError(f"{tag} broke")
        return {"tag": tag}

    return fn


# ------------------------------------------------------------------------------------------ text response
@pytest.mark.parametrize(
    ("novel", "triggered", "text"),
    [
        (True, (), NOVEL_RESPONSE),
        (True, (4, 5), NOVEL_RESPONSE),
        (False, (4, 5, 6), "Understood. This triggered 3 internal processes."),
        (False, (), ACKNOWLEDGED),
    ],
)
async def test_text_response_matches_novelty_and_triggers(gw, novel, triggered, text):
    ctl = ActionController()
    records = await ctl.dispatch(gw.push_text("hi"), result(novel, triggered))
    assert records[0]["action"] == "text_response" and records[0]["status"] == "completed"
    assert records[0]["result"] == {"response": text} == {"response": response_for(novel, len(triggered))}
    assert [(r["action"], r["path"], r["status"]) for r in records[1:]] == [
        ("log", "cold", "queued"),
        ("metrics", "cold", "queued"),
    ]
    await ctl.shutdown()
    assert ctl.metrics["signals"] == 1 and ctl.metrics["triggered_actions"] == len(triggered)


async def test_no_text_response_for_numeric_signals(gw):
    ctl = ActionController()
    records = await ctl.dispatch(gw.push_numeric(42.0), result())
    assert [r["action"] for r in records] == ["log", "metrics"]
    await ctl.shutdown()


# ------------------------------------------------------------------------------------------- hot and cold
async def test_cold_path_runs_after_the_hot_path_and_shutdown_drains_it(gw):
    order: list[str] = []
    actions = [Action("hot_a", recorder(order, "hot")), Action("cold_a", recorder(order, "cold"))]
    rules = [Rule("h", ("hot_a",)), Rule("c", ("cold_a",), path="cold")]
    ctl = ActionController(rules, actions)
    for i in range(5):
        records = await ctl.dispatch(gw.push_text(f"m{i}"), result())
        assert [r["status"] for r in records] == ["completed", "queued"]
    assert order == [f"hot:{i}" for i in range(5)]  # nothing cold yet: the loop never ran the task
    assert ctl.pending == 5
    await ctl.shutdown()
    assert order == [f"hot:{i}" for i in range(5)] + [f"cold:{i}" for i in range(5)]
    assert ctl.pending == 0 and ctl._task is None
    assert [r["result"] for r in ctl.recent] == [{"tag": "cold"}] * 5
    await ctl.shutdown()  # idempotent
    await ctl.dispatch(gw.push_text("again"), result())  # usable after shutdown
    await ctl.join()
    assert order[-1] == "cold:5"
    await ctl.shutdown()


async def test_cold_actions_run_in_the_background_while_the_loop_is_free(gw):
    order: list[str] = []
    ctl = ActionController([Rule("c", ("cold_a",), path="cold")], [Action("cold_a", recorder(order, "c"))])
    await ctl.dispatch(gw.push_text("x"), result())
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["c:0"] and ctl.pending == 0
    await ctl.shutdown()


async def test_back_pressure_waits_instead_of_dropping(gw):
    seen: list[str] = []
    ctl = ActionController(
        [Rule("c", ("cold_a",), path="cold")], [Action("cold_a", recorder(seen, "c"))], cold_maxsize=3
    )
    for i in range(50):
        await ctl.dispatch(gw.push_text(str(i)), result())
        assert ctl.pending < 3
    await ctl.shutdown()
    assert seen == [f"c:{i}" for i in range(50)]


async def test_async_actions_on_both_paths(gw):
    order: list[str] = []

    async def slow_hot(ctx):
        await asyncio.sleep(0.01)
        order.append("hot")
        return {"ok": 1}

    async def slow_cold(ctx):
        await asyncio.sleep(0.01)
        order.append("cold")

    ctl = ActionController(
        [Rule("h", ("slow_hot",)), Rule("c", ("slow_cold",), path="cold")],
        [Action("slow_hot", slow_hot), Action("slow_cold", slow_cold)],
    )
    assert ctl.registry["slow_hot"].is_async
    records = await ctl.dispatch(gw.push_text("x"), result())
    assert records[0]["result"] == {"ok": 1} and order == ["hot"]
    await ctl.join()
    assert order == ["hot", "cold"]
    await ctl.shutdown()


async def test_failures_are_recorded_and_isolated(gw, caplog):
    order: list[str] = []

    def bad_condition(ctx):
        raise ValueError("no")

    ctl = ActionController(
        [
            Rule("broken", ("ok",), condition=bad_condition),
            Rule("h", ("bad", "ok")),
            Rule("c", ("bad", "ok"), path="cold"),
        ],
        [Action("bad", recorder(order, "bad", fail=True)), Action("ok", recorder(order, "ok"))],
    )
    with caplog.at_level("ERROR", logger="neurograph.actions"):
        records = await ctl.dispatch(gw.push_text("x"), result())
        await ctl.shutdown()
    assert [(r["action"], r["status"]) for r in records] == [
        ("bad", "failed"),
        ("ok", "completed"),
        ("bad", "queued"),
        ("ok", "queued"),
    ]
    assert records[0]["error"] == "RuntimeError: bad broke" and records[0]["result"] is None
    assert [r["status"] for r in ctl.recent] == ["failed", "completed"]
    assert order == ["bad:0", "ok:0", "bad:0", "ok:0"]
    assert ctl.stats()["failed"] == 2 and "bad broke" in caplog.text and "broken" in caplog.text


async def test_priority_boost_orders_actions_and_sets_their_priority(gw):
    order: list[str] = []
    ctl = ActionController(
        [
            Rule("low", ("a",), priority_boost=-10),
            Rule("high", ("b",), priority_boost=100),
            Rule("mid", ("c",)),
        ],
        [Action(n, recorder(order, n)) for n in "abc"],
    )
    records = await ctl.dispatch(gw.push_text("x"), result())
    assert [(r["action"], r["priority"]) for r in records] == [("b", 255), ("c", 200), ("a", 190)]
    assert order == ["b:0", "c:0", "a:0"]


async def test_conditions_callable_pattern_and_filter(gw):
    hits: list[str] = []
    ctl = ActionController(
        [
            Rule("novel", ("n",), condition={"data.is_novel": True, "data.anomaly_score": {"$gt": 0.4}}),
            Rule("text", ("t",), condition="signal.input.external.text.*"),
            Rule("busy", ("u",), condition=lambda ctx: ctx.signal.priority > 150),
            Rule("off", ("u",), enabled=False),
        ],
        [Action(n, recorder(hits, n)) for n in "ntu"],
    )
    await ctl.dispatch(gw.push_text("x"), result(is_novel=True, anomaly=0.9))
    await ctl.dispatch(gw.push_text("x", priority=10), result(is_novel=True, anomaly=0.1))
    await ctl.dispatch(gw.push_numeric(5.0), result(is_novel=False))
    assert hits == ["n:0", "t:0", "u:0", "t:1"]


def test_rule_and_registry_errors():
    with pytest.raises(ActionError, match="path"):
        Rule("r", ("log",), path="warm")
    with pytest.raises(ActionError, match="priority_boost"):
        Rule("r", ("log",), priority_boost=1000)
    with pytest.raises(ActionError, match="actions"):
        Rule("r", ())
    with pytest.raises(InvalidQuery, match="unknown operator"):
        Rule("r", ("log",), condition={"data.x": {"$near": 1}})
    with pytest.raises(InvalidQuery):
        Rule("r", ("log",), condition="Not A Pattern")
    ctl = ActionController()
    with pytest.raises(ActionError, match="'shout'") as err:
        ctl.add_rule("r", ["shout"])
    assert err.value.field == "action" and len(ctl.rules) == 3
    with pytest.raises(ActionError, match="already used"):
        ctl.add_rule("log", ["log"])
    with pytest.raises(ActionError, match="no such rule"):
        ctl.remove_rule("nope")
    assert ctl.remove_rule("log").name == "log" and [r.name for r in ctl.rules] == ["respond", "metrics"]
    with pytest.raises(ActionError, match="one lowercase segment"):
        Action("Bad.Name", print)
    with pytest.raises(ActionError, match="callable"):
        Action("x", 42)  # type: ignore[arg-type]
    reg = ActionRegistry(builtin_actions())
    with pytest.raises(ActionError, match="already registered"):
        reg.register("log", print)
    with pytest.raises(ActionError, match="needs a function"):
        reg.register("shout")
    reg.register("log", print, replace=True)
    assert reg.unregister("log").fn is print and "log" not in reg and len(reg) == 2
    with pytest.raises(ActionError):
        ActionController(cold_maxsize=0)


async def test_records_are_published_on_the_actions_channel(gw):
    bus = EventBus()
    events = []
    bus.subscribe("action.*", events.append, channels="actions")
    ctl = ActionController(bus=bus)
    await ctl.dispatch(gw.push_text("x"), result(is_novel=True))
    await ctl.shutdown()
    assert [e.event_type for e in events] == [
        "action.text_response.completed",
        "action.log.completed",
        "action.metrics.completed",
    ]
    assert events[0].data["result"] == {"response": NOVEL_RESPONSE} and events[0].channel == "actions"


def test_the_controller_survives_a_new_event_loop(gw):
    ctl = ActionController()
    asyncio.run(ctl.dispatch(gw.push_text("a"), result()))  # its cold task dies with the loop

    async def second() -> None:
        await ctl.dispatch(gw.push_text("b"), result())
        await ctl.shutdown()

    asyncio.run(second())  # a fresh task on the fresh loop
    assert ctl.pending == 0 and ctl.metrics["signals"] == 2


# --------------------------------------------------------------------------------------------- batches
async def test_batch_dispatch_matches_single_dispatch():
    eng = Engine(seed=0)
    gw = Gateway(text_encoder="hashed")  # "Hello, World!" is "hello world" to hashed terms
    texts = ["hello world", "hello world", "something else", "Hello, World!"]
    batch = gw.push_texts(texts)
    results = eng.emit_batch(batch.event_type, batch.vectors, batch.priorities)
    ctl = ActionController()
    acts = await ctl.dispatch_batch(batch, results)
    assert len(acts) == 4 and "text_responsex4" in repr(acts)
    single = ActionController()
    for i in range(4):
        row = acts.row(i)
        expected = await single.dispatch(batch[i], results[i])
        strip = [{k: v for k, v in r.items() if k != "time_ms"} for r in row]
        assert strip == [{k: v for k, v in r.items() if k != "time_ms"} for r in expected]
    assert [r[0]["result"]["response"] for r in map(acts.row, range(4))] == [
        NOVEL_RESPONSE,
        ACKNOWLEDGED,
        NOVEL_RESPONSE,
        ACKNOWLEDGED,
    ]
    await ctl.shutdown()
    await single.shutdown()
    assert ctl.metrics == {**single.metrics}
    assert [r["rows"] for r in ctl.recent] == [4, 4]


async def test_batch_fallback_row_by_row_and_row_selection():
    eng = Engine(seed=0)
    gw = Gateway()
    batch = gw.push_texts(["a", "b", "c", "d"], priority=[10, 200, 30, 220])
    results = eng.emit_batch(batch.event_type, batch.vectors, batch.priorities)
    seen: list[str] = []

    def per_row(ctx):
        seen.append(ctx.signal.payload)
        if ctx.signal.payload == "d":
            raise RuntimeError("d is bad")
        return {"p": ctx.signal.priority}

    ctl = ActionController(
        [
            Rule("loud", ("per_row",), condition=lambda ctx: ctx.signal.priority > 100),
            Rule("vec", ("per_row",), batch_condition=lambda b: np.asarray(b.signals.priorities) < 20),
        ],
        [Action("per_row", per_row)],
    )
    acts = await ctl.dispatch_batch(batch, results)
    assert seen == ["b", "d", "a"]
    assert acts.row(1)[0]["result"] == {"p": 200}
    assert acts.row(3)[0]["status"] == "failed" and acts.row(3)[0]["error"] == "RuntimeError: d is bad"
    assert acts.row(2) == [] and acts.row(0)[0]["rule"] == "vec"


def test_lazy_rows():
    rows = LazyRows(lambda j: j * j, 4)
    assert len(rows) == 4 and rows[3] == 9 and rows[-1] == 9 and rows[1:3] == [1, 4]
    with pytest.raises(IndexError):
        rows[4]
    assert repr(rows) == "LazyRows(n=4)"


def test_reprs():
    ctl = ActionController()
    assert "respond->text_response (hot)" in repr(ctl) and "log->log (cold)" in repr(ctl)
    assert [r.name for r in default_rules()] == ["respond", "log", "metrics"]
    assert "text_response" in repr(ctl.registry)
