"""``%neurograph`` and ``%%signal`` through a real IPython ``InteractiveShell``: every subcommand, and
its mistakes as ``UsageError``s that end with the usage line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import neurograph as ng
from neurograph.display import Status

CHAT = "signal.input.external.text.chat"


def run(shell: Any, source: str) -> Any:
    """Run a cell; return its value, raising what the cell raised."""
    result = shell.run_cell(source)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def usage_error(shell: Any, source: str) -> str:
    """Run a cell that must fail with a UsageError; return its message."""
    with capture_output():
        result = shell.run_cell(source)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    return str(result.error_in_exec)


def html_of(outputs: list[Any]) -> list[str]:
    return [o.data["text/html"] for o in outputs if "text/html" in o.data]


# --- light to import -------------------------------------------------------------------------------
def test_imports_stay_light() -> None:
    """``import neurograph`` and ``neurograph.jupyter`` pull in neither IPython, ipywidgets nor plotly;
    loading the extension pulls in IPython only."""
    code = (
        "import sys, neurograph, neurograph.jupyter\n"
        "heavy = ('IPython', 'ipywidgets', 'plotly', 'ipykernel')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'neurograph.jupyter')\n"
        "print(sorted(m for m in ('ipywidgets', 'plotly') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout


# --- init, status -----------------------------------------------------------------------------------
def test_init_binds_an_engine(shell: Any, tmp_path: Any) -> None:
    eng = run(shell, "%neurograph init --seed 3 --profile explorer")
    assert shell.user_ns["eng"] is eng
    assert isinstance(eng, ng.Engine) and eng.seed == 3 and eng.cdna.name == "explorer"
    other = run(shell, f"%neurograph init --path {tmp_path / 'store'} --name stored")
    assert shell.user_ns["stored"] is other and other.store is not None
    run(shell, f"%neurograph emit {CHAT} 0 0 0 0 0 0 0 0.5")  # the magics now act on the newest engine
    assert other.stats()["signals"] == 1 and eng.stats()["signals"] == 0
    other.close()
    shell.user_ns.pop("stored")


def test_init_mistakes_are_usage_errors(shell: Any) -> None:
    msg = usage_error(shell, "%neurograph init --device tpu")
    assert "device" in msg and msg.splitlines()[-1].startswith("usage: %neurograph init")
    assert "--name" in usage_error(shell, "%neurograph init --name 2x")
    assert "unrecognized arguments" in usage_error(shell, "%neurograph init --colour red")
    assert "invalid int value" in usage_error(shell, "%neurograph init --seed many")
    assert "unknown profile" in usage_error(shell, "%neurograph init --profile nope")


def test_commands_need_an_engine_and_a_name(shell: Any) -> None:
    assert "run %neurograph init first" in usage_error(shell, "%neurograph status")
    msg = usage_error(shell, "%neurograph")
    assert "a command is needed" in msg and msg.splitlines()[-1].startswith("usage: %neurograph {init,")
    assert "unknown command 'fly'" in usage_error(shell, "%neurograph fly")


def test_an_eng_in_the_namespace_is_used(shell: Any) -> None:
    eng = ng.Engine(seed=1)
    shell.user_ns["eng"] = eng
    run(shell, f"%neurograph emit {CHAT} 0 0 0 0 0 0 0 0.5")
    assert eng.stats()["signals"] == 1


def test_status(shell: Any) -> None:
    run(shell, "%neurograph init")
    run(shell, f"%neurograph emit {CHAT} 0.1 0 0 0 0 0 0 0")
    status = run(shell, "%neurograph status")
    assert isinstance(status, Status) and status["tokens"] == 1 and status["signals"] == 1
    html = status._repr_html_()
    assert "<table" in html and "novel_rate" in html and "Engine(device=&#x27;cpu&#x27;" in html
    frame = status.to_pandas()
    assert list(frame.columns) == ["key", "value"] and frame.set_index("key").loc["tokens", "value"] == 1


# --- query ------------------------------------------------------------------------------------------
def test_query_shows_a_table_and_keeps_the_frame(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    eng.emit_batch(
        CHAT, np.random.default_rng(0).uniform(-1, 1, (30, 8)), kinds=["goal"] * 10 + ["concept"] * 20
    )
    q = "find all tokens where kind = 'goal' order by id desc limit 4"
    with capture_output() as cap:
        value = run(shell, f'%neurograph query "{q}"')
    assert value is None
    frame = shell.user_ns["_"]
    pd.testing.assert_frame_equal(frame, eng.query(q))
    assert frame["id"].tolist() == [9, 8, 7, 6]
    (html,) = html_of(cap.outputs)
    assert "<table" in html and "4 rows" in html and "&#x27;goal&#x27;" in html  # the caption, escaped
    msg = usage_error(shell, '%neurograph query "find some tokens"')
    assert "expected" in msg and msg.splitlines()[-1].startswith("usage: %neurograph query")


# --- emit -------------------------------------------------------------------------------------------
def test_emit_numbers_and_text(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    first = run(shell, f"%neurograph emit {CHAT} 0.1 0.2 0 0 0.5 0 0 0.1 --priority 200")
    assert isinstance(first, ng.EmitResult) and first.is_novel
    assert eng.token(first.token_id)["position"]["cognitive"] == pytest.approx(0.5)
    a = run(shell, f'%neurograph emit {CHAT} "the cat sat on the mat" --label pets')
    b = run(shell, f"%neurograph emit {CHAT} 'the cat sat on the mat'")
    assert a.is_novel and not b.is_novel and b.token_id == a.token_id  # the same text: the same token
    tok = eng.token(a.token_id)  # the text is the payload, the label the signal's
    assert tok["payload"] == "the cat sat on the mat" and tok["label"] == "pets"
    html = shell.display_formatter.format(b)[0]["text/html"]
    assert "EmitResult: token" in html and "familiar" in html and "neighbors, nearest first" in html


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{CHAT} 1 2 3", "expected 8 numbers or one quoted"),
        (f"{CHAT} 1 2 3 4 5 6 7 x", "expected 8 numbers"),
        (f"{CHAT} 0 0 0 0 0 0 0 0 --priority 300", "priority"),
        ("Not.A.Type 0 0 0 0 0 0 0 0", "event_type"),
        (f"{CHAT} 0 0 0 0 0 0 0 nan", "finite"),
        (f"{CHAT}", "the following arguments are required"),
        (f'{CHAT} "unbalanced', "quotation"),
    ],
    ids=["three-numbers", "not-a-number", "priority", "event-type", "nan", "no-values", "quotes"],
)
def test_emit_mistakes(shell: Any, line: str, expected: str) -> None:
    eng = run(shell, "%neurograph init")
    msg = usage_error(shell, f"%neurograph emit {line}")
    assert expected in msg, msg
    assert msg.splitlines()[-1].startswith("usage: %neurograph emit")
    assert eng.stats()["signals"] == 0  # nothing changed


# --- step, hierarchy --------------------------------------------------------------------------------
def test_step_and_hierarchy(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.6, 0.6, (3, 8))
    eng.emit_batch(CHAT, (centres[rng.integers(0, 3, 200)] + rng.normal(0, 0.03, (200, 8))).clip(-1, 1))
    stats = run(shell, "%neurograph step 3")
    assert isinstance(stats, ng.StepStats) and stats.steps == 3 and eng.steps == 3
    assert "StepStats: 3 steps" in shell.display_formatter.format(stats)[0]["text/html"]
    h = run(shell, "%neurograph hierarchy")
    assert isinstance(h, ng.Hierarchy) and h.n_levels >= 2
    html = shell.display_formatter.format(h)[0]["text/html"]
    assert "tokens per level" in html and "level-1 fields, largest first" in html
    assert "invalid int value" in usage_error(shell, "%neurograph step many")
    assert "steps" in usage_error(shell, "%neurograph step -5")
    assert "unrecognized" in usage_error(shell, "%neurograph hierarchy --deep")


# --- subscribe, unsubscribe -------------------------------------------------------------------------
def test_subscribe_shows_events_live_newest_at_the_bottom(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    with capture_output() as cap:
        run(shell, """%neurograph subscribe signal.input.* --filter '{"data.is_novel": true}' --cap 3""")
        for i in range(5):
            run(shell, f"%neurograph emit {CHAT} {i * 0.3 - 0.6} 0 0 0 0 0 0 0")
        run(shell, f"%neurograph emit {CHAT} -0.6 0 0 0 0 0 0 0")  # familiar: filtered out
        run(shell, "%neurograph emit signal.input.internal.thought 0.9 0.9 0 0 0 0 0 0")
    first, *updates = [
        o for o in cap.outputs if "text/html" in o.data and "subscription 1" in o.data["text/html"]
    ]
    assert not first.update and updates and all(o.update for o in updates)
    last = updates[-1].data["text/html"]
    assert "6 event(s), last 3 shown" in last  # 6 novel signals matched; the cap keeps 3
    at = [last.find(f"token_id={i},") for i in range(6)]
    assert at[:3] == [-1, -1, -1] and 0 < at[3] < at[4] < at[5]  # the newest 3, newest at the bottom
    assert at[4] < last.find("signal.input.internal.thought") < at[5]  # the last row: the thought
    with capture_output() as cap:
        run(shell, "%neurograph unsubscribe 1")
        run(shell, f"%neurograph emit {CHAT} 0 0.9 0 0 0 0 0 0")
    assert "subscription 1 closed (6 events delivered)" in cap.stdout
    assert not [o for o in cap.outputs if o.update]  # no more redraws
    assert eng.bus.stats()["subscribers"] == 0
    assert "no subscription 1 (live: none)" in usage_error(shell, "%neurograph unsubscribe 1")
    assert "no subscription x (live: none)" in usage_error(shell, "%neurograph unsubscribe x")
    with capture_output() as cap:
        run(shell, "%neurograph subscribe *")
        run(shell, "%%signal *\npass")
        run(shell, "%neurograph unsubscribe all")
    assert "subscription 2 closed" in cap.stdout and "subscription 3 closed" in cap.stdout
    assert eng.bus.stats()["subscribers"] == 0
    assert "not JSON" in usage_error(shell, "%neurograph subscribe * --filter {nope")
    assert "must be a JSON object" in usage_error(shell, "%neurograph subscribe * --filter [1]")
    assert "unknown operator" in usage_error(
        shell, """%neurograph subscribe * --filter '{"data.x": {"$bad": 1}}'"""
    )
    assert "invalid event type pattern" in usage_error(shell, "%neurograph subscribe Bad..*")


async def test_event_log_redraws_are_coalesced_on_the_loop(shell: Any) -> None:
    """Events published on the engine's worker thread are drawn on the loop's thread, at most once per
    0.1 s, and the last redraw holds the newest event."""
    from neurograph.jupyter.live import EventLog

    eng = ng.Engine(seed=0)
    log = EventLog("worker events", cap=5)
    with capture_output() as cap:
        log.show()
        sub = eng.subscribe("signal.input.*", log)
        loop = __import__("asyncio").get_running_loop()
        t0 = loop.time()
        for i in range(60):
            last = await eng.call(eng.emit, CHAT, [i / 60 - 0.5] + [0.0] * 7)
        await __import__("asyncio").sleep(0.25)
        elapsed = loop.time() - t0
    sub.close()
    eng.close()
    updates = [o for o in cap.outputs if o.update]
    assert log.caller.redraws == len(updates) >= 1
    assert len(updates) <= elapsed / 0.1 + 1 < 60  # coalesced: far fewer redraws than events
    html = updates[-1].data["text/html"]
    assert "60 event(s), last 5 shown" in html and html.rfind("token_id=") == html.rfind(
        f"token_id={last.token_id},"
    )


# --- %%signal ----------------------------------------------------------------------------------------
def test_signal_cell_runs_with_event_bound(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    shell.user_ns["seen"] = []
    with capture_output() as cap:
        run(
            shell,
            "%%signal signal.input.* --filter '{\"data.is_novel\": true}'\n"
            "seen.append((event.event_type, event.data['token_id']))",
        )
    assert "handler 1 runs on signal.input.*" in cap.stdout
    eng.emit(CHAT, [0.1] * 8)
    eng.emit(CHAT, [0.1] * 8)  # familiar: filtered out
    eng.emit_batch("signal.input.internal.thought", [[0.5] * 8, [-0.5] * 8])
    eng.emit("status.ping.pong", [0.0] * 8)  # does not match the pattern
    assert shell.user_ns["seen"] == [
        (CHAT, 0),
        ("signal.input.internal.thought", 1),
        ("signal.input.internal.thought", 2),
    ]
    run(shell, "%neurograph unsubscribe 1")
    eng.emit(CHAT, [0.9] * 8)
    assert len(shell.user_ns["seen"]) == 3


def test_a_failing_handler_shows_its_traceback_once_and_never_breaks_emits(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    run(shell, "%%signal signal.input.*\nfrom math import sqrt\nsqrt(-event.data['token_id'] - 1)")
    magics = shell.magics_manager.registry["NeurographMagics"]
    with capture_output() as cap:
        results = [run(shell, f"%neurograph emit {CHAT} {0.3 * i - 0.6} 0 0 0 0 0 0 0") for i in range(3)]
    assert [r.token_id for r in results] == [0, 1, 2] and eng.stats()[
        "tokens"
    ] == 3  # every emit went through
    assert cap.stderr.count("Traceback") == 1 and cap.stderr.count("ValueError: math domain error") == 1
    assert "<%%signal 1> failed on signal.input.external.text.chat (shown once" in cap.stderr
    assert 'File "<%%signal 1>", line 2' in cap.stderr
    assert magics.logs[1].errors == 3 and magics.logs[1].calls == 3


def test_signal_mistakes(shell: Any) -> None:
    run(shell, "%neurograph init")
    assert "does not compile" in usage_error(shell, "%%signal signal.input.*\nif :")
    msg = usage_error(shell, "%%signal\npass")
    assert "required: pattern" in msg and msg.splitlines()[-1].startswith("usage: %%signal")
    assert "not JSON" in usage_error(shell, "%%signal * --filter {x\npass")


# --- cdna --------------------------------------------------------------------------------------------
def test_cdna_show_set_and_profile(shell: Any) -> None:
    eng = run(shell, "%neurograph init")
    cdna = run(shell, "%neurograph cdna")
    assert cdna is eng.cdna and cdna.version == 1
    html = shell.display_formatter.format(cdna)[0]["text/html"]
    assert "CDNA &#x27;default&#x27; v1" in html and "novelty_threshold" in html and "0 changed" in html
    new = run(shell, "%neurograph cdna --set temperature=0.02 --set damping=2 --set strict=True")
    assert (new.version, new.temperature, new.damping, new.strict) == (2, 0.02, 2, True) and eng.cdna is new
    assert "3 changed" in shell.display_formatter.format(new)[0]["text/html"]
    assert run(shell, "%neurograph cdna --profile analyst").name == "analyst"
    assert "unknown CDNA field 'colour'" in usage_error(shell, "%neurograph cdna --set colour=red")
    assert "must lie in" in usage_error(shell, "%neurograph cdna --set damping=-1")
    assert "KEY=VALUE" in usage_error(shell, "%neurograph cdna --set damping")
    assert "exclude each other" in usage_error(shell, "%neurograph cdna --profile default --set damping=1")
    msg = usage_error(shell, "%neurograph cdna --profile nope")
    assert msg.splitlines()[-1].startswith("usage: %neurograph cdna")
    assert eng.cdna.version == 3  # the refused changes changed nothing
