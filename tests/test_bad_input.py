"""Bad input gets a typed error and changes nothing (the README's promise, STYLE "Errors are typed").

Hypothesis drives the public calls with random input: ``emit``, ``emit_batch``, ``query``, ``update_cdna``,
``subscribe`` filters, ``step``/``run``, and ``Engine.open`` on stores with damaged files. Every call either
succeeds or raises a :class:`~neurograph.errors.NeurographError`; after an error the engine's state
(tokens, edges, CDNA, tick, subscriptions) is what it was.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import neurograph as ng
from neurograph.cdna import CDNA

CHAT = "signal.input.external.text.chat"
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e39, -1e39, 3.5e38, 1e308, -0.0, 0.5]),
    st.integers(-(10**40), 10**40),
)
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=20), st.binary(max_size=8), st.just(object()))
vectors = st.one_of(
    st.lists(numbers, min_size=8, max_size=8),
    st.lists(numbers, max_size=12),
    st.lists(st.one_of(numbers, junk), min_size=8, max_size=8),
    junk,
)
priorities = st.one_of(st.integers(-1000, 1000), st.floats(), junk)
event_types = st.one_of(
    st.sampled_from(
        [CHAT, "a.b", "A.b", "a..b", "a", "a.b.", "a." * 70 + "b", "signal.input.external.text.chat\n"]
    ),
    st.text(max_size=40),
    junk,
)


def _engine() -> ng.Engine:
    eng = ng.Engine(seed=0)
    eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-0.5, 0.5, (30, 8)))
    return eng


def _state(eng: ng.Engine) -> tuple:
    return (eng.tokens(), eng.edges(), eng.cdna.hash, eng.cdna.version, eng.tick, eng.steps)


def _same(a: tuple, b: tuple) -> None:
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2:] == b[2:]


def _typed_or_ok(eng: ng.Engine, call) -> None:
    before = _state(eng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow warning is not an answer
        try:
            call()
        except ng.NeurographError:
            _same(before, _state(eng))


@SETTINGS
@given(event_types, vectors, priorities)
def test_emit_random_input(event_type, vector, priority) -> None:
    eng = _engine()
    _typed_or_ok(eng, lambda: eng.emit(event_type, vector, priority))


@SETTINGS
@given(
    st.one_of(event_types, st.lists(event_types, max_size=4)),
    st.one_of(st.lists(vectors, max_size=4), vectors),
    st.one_of(priorities, st.lists(priorities, max_size=4)),
    st.one_of(
        st.none(), st.sampled_from(["concept", "goal", 3, -1, 99, "nope", True]), st.lists(junk, max_size=3)
    ),
)
def test_emit_batch_random_input(event_types, vecs, pri, kinds) -> None:
    eng = _engine()
    _typed_or_ok(eng, lambda: eng.emit_batch(event_types, vecs, pri, kinds=kinds))


def test_values_beyond_float32_are_refused() -> None:
    eng = _engine()
    before = _state(eng)
    for bad in ([1e39] + [0.0] * 7, [0.0] * 7 + [-3.5e38]):
        with pytest.raises(ng.InvalidSignal, match="float32"):
            eng.emit(CHAT, bad)
        with pytest.raises(ng.InvalidSignal, match="float32"):
            eng.emit_batch(CHAT, [bad, [0.0] * 8])
    _same(before, _state(eng))


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=80),
        junk,
        st.from_regex(r"find all (tokens|nodes|edges|fields) where [a-z]+ [<>=!]+ .{0,10}"),
    )
)
def test_query_random_input(text) -> None:
    eng = _engine()
    _typed_or_ok(eng, lambda: eng.query(text))


cdna_keys = st.one_of(st.sampled_from(sorted(CDNA().to_dict())), st.text(max_size=10))
cdna_values = st.one_of(numbers, junk, st.lists(numbers, max_size=9))


@SETTINGS
@given(st.dictionaries(cdna_keys, cdna_values, max_size=3))
@example({"allowed_edge_kinds": None})  # found by CI: an iteration over None
@example({"allowed_edge_kinds": b""})  # found by CI: bytes reached the JSON content hash
@example({"allowed_edge_kinds": [[1]]})
@example({"name": 3})
@example({"field_mass_max": 3.402823466385289e38})  # found by CI: past float32, overflowed the clamp
def test_update_cdna_random_input(changes) -> None:
    eng = _engine()
    _typed_or_ok(eng, lambda: eng.update_cdna(**changes))


filter_leaf = st.one_of(numbers, junk, st.lists(st.one_of(numbers, st.text(max_size=5)), max_size=3))
filters = st.recursive(
    st.dictionaries(
        st.one_of(
            st.sampled_from(
                ["channel", "event_type", "data.is_novel", "data.x.0", "$and", "$or", "$not", "$eq"]
            ),
            st.text(max_size=8),
        ),
        filter_leaf,
        max_size=3,
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or", "$not", "data.token_id", "event_type"]),
        st.one_of(
            inner,
            st.lists(inner, max_size=2),
            st.dictionaries(st.sampled_from(["$gt", "$in", "$regex", "$bad"]), filter_leaf, max_size=2),
        ),
        max_size=2,
    ),
    max_leaves=6,
)


@SETTINGS
@given(st.one_of(filters, st.text(max_size=20), junk))
def test_subscribe_random_filters(spec) -> None:
    eng = _engine()
    n = len(eng.bus.subscriptions) if hasattr(eng.bus, "subscriptions") else None
    try:
        sub = eng.subscribe(spec, lambda e: None)
    except ng.NeurographError:
        if n is not None:
            assert len(eng.bus.subscriptions) == n
        return
    eng.emit(CHAT, [0.1] * 8)  # a compiled filter never raises on an event
    sub.close() if hasattr(sub, "close") else None


@SETTINGS
@given(st.one_of(st.integers(-5, 3), st.floats(), junk), st.one_of(st.integers(-2, 3), st.floats(), junk))
def test_run_random_input(steps, every) -> None:
    eng = _engine()
    _typed_or_ok(eng, lambda: eng.run(steps, every=every))


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stores") / "good"
    with ng.Engine(path=path, seed=0, durability="normal") as eng:
        eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-1, 1, (40, 8)))
        eng.save()
        eng.emit(CHAT, [0.2] * 8)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_open_damaged_stores(good_store: Path, tmp_path_factory: pytest.TempPathFactory, data) -> None:
    path = tmp_path_factory.mktemp("damaged") / "s"
    shutil.copytree(good_store, path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    victim = data.draw(st.sampled_from(files), label="file")
    raw = bytearray(victim.read_bytes())
    how = data.draw(st.sampled_from(["flip", "truncate", "empty", "junk"]), label="how")
    if how == "flip" and raw:
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif how == "empty":
        raw = bytearray()
    else:
        raw = bytearray(data.draw(st.binary(max_size=64)))
    victim.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a skipped damaged snapshot warns: that is an answer
        try:
            eng = ng.Engine.open(path)
        except ng.NeurographError:
            return
    eng.close()
    assert not math.isnan(eng.stats()["tick"])
