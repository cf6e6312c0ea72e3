"""Rich display of the result objects: the DataFrames behind the tables, escaped HTML, truncation.

The first tests call :mod:`neurograph.display` directly. ``test_result_classes_delegate_to_display``
checks the classes' own ``_repr_html_`` / ``to_pandas`` (delegations to the same functions).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import neurograph as ng
from neurograph import display

CHAT = "signal.input.external.text.chat"


def tinted_rows(html: str) -> int:
    """Rows whose first cell the Styler tinted (its CSS rule lists the tinted cells' selectors)."""
    css = html.split("</style>")[0]
    if "#fff3cd" not in css:
        return 0
    block = css[: css.index("background-color: #fff3cd")]
    return block[block.rindex("}") + 1 :].count("_col0")


def test_emit_result(engine: ng.Engine) -> None:
    r = engine.emit(CHAT, engine.tokens()[list(ng.AXES)].to_numpy()[0] + 0.01)
    frame = display.emit_result_frame(r)
    assert frame.shape == (1, 10) and frame["token_id"].iloc[0] == r.token_id
    assert frame["n_neighbors"].iloc[0] == len(r.neighbors) > 0
    assert frame["nearest_distance"].iloc[0] == pytest.approx(r.neighbors[0]["distance"])
    nb = display.neighbors_frame(r)
    assert nb["token_id"].tolist() == [n["token_id"] for n in r.neighbors]
    assert nb["distance"].is_monotonic_increasing
    html = display.emit_result_html(r)
    assert f"EmitResult: token {r.token_id} (familiar)" in html and html.count("<table") == 2
    lonely = ng.Engine().emit(CHAT, [0.0] * 8)
    assert math.isinf(display.emit_result_frame(lonely)["nearest_distance"].iloc[0])
    assert display.emit_result_html(lonely).count("<table") == 1  # no neighbours: no second table


def test_batch_result_is_cut_to_its_first_rows(engine: ng.Engine) -> None:
    b = engine.emit_batch(CHAT, np.random.default_rng(1).uniform(-1, 1, (40, 8)))
    html = display.batch_result_html(b)
    novel = int(b.is_novel.sum())
    assert f"BatchResult: 40 signals, {novel} novel" in html and "(first 20 of 40 rows)" in html
    assert html.count("<tr>") == 21  # the header and 20 rows
    assert tinted_rows(html) == int(b.is_novel[:20].sum())  # novel rows are tinted
    pd.testing.assert_frame_equal(display.batch_result_frame(b), b.to_pandas())


def test_step_stats(engine: ng.Engine) -> None:
    stats = engine.step(2)
    frame = display.step_stats_frame(stats)
    assert frame.iloc[0].to_dict() == stats.to_dict()
    assert "StepStats: 2 steps" in display.step_stats_html(stats)


def test_cdna_marks_what_changed() -> None:
    cdna = ng.CDNA.profile("analyst")
    frame = display.cdna_frame(cdna)
    assert frame["field"].tolist()[:2] == ["name", "version"] and len(frame) > 50
    changed = set(frame.loc[frame["changed"], "field"])
    assert changed == {
        "strict",
        "novelty_threshold",
        "max_neighbors",
        "max_degree",
        "learning_rate",
        "decay_rate",
        "activation_depth",
    }
    row = frame.set_index("field").loc["axis_scale"]
    assert row["value"] == "1, 1, 1, 1, 1, 1, 1, 1" and not row["changed"]
    html = display.cdna_html(cdna)
    assert f"v1 (hash {cdna.hash}): 7 changed" in html
    assert tinted_rows(html) == 7


def test_hierarchy(engine: ng.Engine) -> None:
    h = engine.hierarchy()
    levels = display.hierarchy_levels_frame(h)
    assert levels["tokens"].tolist() == h.sizes()
    assert levels["fields_above"].tolist() == [*h.sizes()[1:], 0]
    assert levels["in_fields"].iloc[0] == (h.to_pandas().query("level == 0")["parent"] >= 0).sum()
    html = display.hierarchy_html(h)
    assert f"tokens per level {h.sizes()}" in html and "level-1 fields, largest first" in html
    pd.testing.assert_frame_equal(display.hierarchy_frame(h), h.to_pandas())


def test_status(engine: ng.Engine) -> None:
    status = display.Status(engine.stats(), repr(engine))
    assert dict(status) == engine.stats() | {"index": status["index"]}
    assert status.to_pandas().set_index("key").loc["tokens", "value"] == engine.stats()["tokens"]
    assert "<table" in status._repr_html_() and "cdna_hash" in status._repr_html_()


def test_text_is_escaped() -> None:
    frame = pd.DataFrame({"<b>name</b>": ["<script>alert(1)</script>", "a & b"], "n": [1, 2]})
    html = display.frame_html(frame, "caption <i>x</i>")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert (
        "&lt;b&gt;name&lt;/b&gt;" in html and "caption &lt;i&gt;x&lt;/i&gt;" in html and "a &amp; b" in html
    )


def test_events_table_puts_what_matters_first() -> None:
    bus = ng.EventBus()
    seen: list[Any] = []
    bus.subscribe("*", seen.append)
    bus.publish(
        "signals", CHAT, {"neighbors": [], "token_id": 7, "is_novel": True, "meta": {"label": "<hi>"}}
    )
    bus.publish("metrics", "dynamics.stepped", {"total_energy": 1.23456789})
    frame = display.events_frame(seen)
    assert frame["data"].tolist() == ["label=<hi>, token_id=7, is_novel=True", "total_energy=1.235"]
    html = display.events_html(seen, "log")
    assert "label=&lt;hi&gt;" in html and html.find("token_id=7") < html.find("total_energy")


def test_result_classes_delegate_to_display(engine: ng.Engine) -> None:
    """The classes show themselves through :mod:`neurograph.display` (``_repr_html_``, ``to_pandas``)."""
    r = engine.emit(CHAT, [0.05] * 8)
    b = engine.emit_batch(CHAT, [[0.2] * 8, [-0.2] * 8])
    s = engine.step(1)
    h = engine.hierarchy(rebuild=False)
    cdna = engine.cdna
    assert r._repr_html_() == display.emit_result_html(r) or "EmitResult: token" in r._repr_html_()
    pd.testing.assert_frame_equal(r.to_pandas(), display.emit_result_frame(r))
    assert "BatchResult: 2 signals" in b._repr_html_()
    pd.testing.assert_frame_equal(s.to_pandas(), display.step_stats_frame(s))
    assert "StepStats: 1 steps" in s._repr_html_()
    pd.testing.assert_frame_equal(cdna.to_pandas(), display.cdna_frame(cdna))
    assert "CDNA &#x27;default&#x27;" in cdna._repr_html_()
    assert "tokens per level" in h._repr_html_()
