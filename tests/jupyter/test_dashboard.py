"""The Dashboard: one ``Plotly.update`` per redraw however many events arrive, at most 10 redraws a
second, stepping and sliders from the loop, a stable sample of what is drawn at 1e5 tokens.

Messages are counted where widgets send them: a comm (``sent`` fixture) standing in for the frontend.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import neurograph as ng

pytest.importorskip("plotly", reason="the jupyter extra is not installed (pip install -e .[jupyter])")
pytest.importorskip("ipywidgets", reason="the jupyter extra is not installed (pip install -e .[jupyter])")

from neurograph.jupyter import Dashboard

CHAT = "signal.input.external.text.chat"
PLOTLY_BOOKKEEPING = {"_last_trace_edit_id", "_last_layout_edit_id"}  # plotly syncs them with each update


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.6, 0.6, (3, 8))
    return (centres[rng.integers(0, 3, n)] + rng.normal(0, 0.03, (n, 8))).clip(-1, 1)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.02)


async def test_one_update_message_per_redraw_however_many_events(sent: Any) -> None:
    eng = ng.Engine(seed=0)
    eng.emit_batch(CHAT, clustered(200))
    dash = Dashboard(eng)
    await asyncio.sleep(0.3)  # the first redraws settle
    flushes0, sent0, events0 = dash.flushes, len(sent.messages), dash.events
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rng = np.random.default_rng(1)
    for v in rng.uniform(-1, 1, (300, 8)):  # published on the engine's worker thread
        await eng.call(eng.emit, CHAT, v)
    eng.emit_batch(CHAT, rng.uniform(-1, 1, (500, 8)))  # published on the loop's thread
    await eng.call(eng.step, 2)
    await asyncio.sleep(0.35)  # the last requests are drawn
    elapsed = loop.time() - t0
    flushes = dash.flushes - flushes0
    events = dash.events - events0
    new = sent.messages[sent0:]
    updates = [m[1]["state"] for m in new if m[0] == "comm_msg" and m[1].get("method") == "update"]
    plotly_updates = [u["_py2js_update"] for u in updates if u.get("_py2js_update")]
    assert events >= 801 and 1 <= flushes <= elapsed / 0.1 + 1  # at most 10 a second
    assert len(plotly_updates) == flushes  # one Plotly.update message per redraw ...
    assert flushes < events / 50  # ... however many events arrived
    for u in updates:  # nothing else is sent: no restyle/relayout per event, no other widget
        assert set(u) <= {"_py2js_update"} | PLOTLY_BOOKKEEPING, set(u)
    assert len(new) == 4 * flushes  # the update, its reset to None, plotly's two edit counters
    last = plotly_updates[-1]
    assert f"tokens={len(eng.tokens())}" in last["layout_data"]["title.text"]  # the newest state is drawn
    dash.close()
    assert eng.bus.stats()["subscribers"] == 0
    eng.close()


async def test_stepping_and_sliders_run_on_the_loop(sent: Any) -> None:
    eng = ng.Engine(seed=0)
    eng.emit_batch(CHAT, clustered(60))
    dash = Dashboard(eng, steps_per_tick=2)
    assert dash.temperature.min == 0.0 and dash.temperature.max >= 0.1 and dash.damping.min == 0.0
    dash.start()
    await until(lambda: eng.steps >= 6)
    dash.pause()
    await until(lambda: dash._step_task is None)
    steps = eng.steps
    await asyncio.sleep(0.2)
    assert eng.steps == steps  # paused
    await asyncio.sleep(0.15)
    energy = dash.fig.data[3]
    assert len(energy.y) >= 3 and np.isfinite(np.asarray(energy.y, float)).all()
    dash.temperature.value = 0.05  # what the frontend does when the slider moves
    dash.damping.value = 2.5
    await until(lambda: (eng.cdna.temperature, eng.cdna.damping) == (0.05, 2.5))
    assert eng.cdna.version == 3  # two validated, logged CDNA updates
    dash.close()
    eng.close()


def test_a_large_engine_draws_a_stable_sample() -> None:
    """Without a running loop the panel draws on refresh(); at 1e5 tokens it draws max_points of them,
    chosen by id, so two redraws draw the same points."""
    eng = ng.Engine(seed=0)
    eng.add_tokens(np.random.default_rng(0).uniform(-1, 1, (100_000, 8)))
    dash = Dashboard(eng, max_points=20_000)
    tokens = dash.fig.data[0]
    drawn = len(tokens.x)
    assert 18_000 <= drawn <= 22_000
    assert f"{drawn:,} of 100,000 level-0 tokens drawn" in dash.fig.layout.title.text
    first = np.asarray(tokens.x).copy()
    dash.refresh()
    np.testing.assert_array_equal(np.asarray(dash.fig.data[0].x), first)
    ids = np.arange(100_000)
    chosen = np.modf(ids * 0.6180339887498949)[0] < 0.2
    np.testing.assert_allclose(first, eng.tokens()["physical"].to_numpy()[chosen], rtol=1e-6)
    dash.projection.value = "pca"
    dash.refresh()
    assert dash.fig.layout.xaxis.title.text == "PC 1" and np.isfinite(np.asarray(dash.fig.data[0].x)).all()
    dash.close()


def test_tokens_are_coloured_by_field_and_fields_fill_the_sunburst() -> None:
    eng = ng.Engine(seed=0)
    eng.emit_batch(CHAT, clustered(240))
    eng.hierarchy()
    dash = Dashboard(eng)
    tokens = eng.tokens()
    base = tokens[tokens["level"] == 0]
    colours = np.asarray(dash.fig.data[0].marker.color)
    parent = base["parent"].to_numpy()
    for field in np.unique(parent[parent >= 0]):
        assert len(set(colours[parent == field])) == 1
    assert len({colours[parent == f][0] for f in np.unique(parent[parent >= 0])}) > 1
    sun = dash.fig.data[2]
    fields = tokens[tokens["level"] == 1]
    assert set(sun.ids) == {"all", *(f"f{i}" for i in tokens.loc[tokens["level"] >= 1, "id"])}
    values = dict(zip(sun.ids, sun.values))
    for fid in fields["id"]:
        assert values[f"f{fid}"] == int((base["parent"] == fid).sum())  # level-0 tokens under the field
    assert values["all"] == len(base)
    dash.close()
