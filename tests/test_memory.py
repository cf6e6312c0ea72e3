"""Tokens remember what they stand for: labels, payloads, samples of resonating signals (issue 15).

The engine's memory (:mod:`neurograph.memory`) is checked through the public calls — ``emit``,
``emit_batch``, ``token``, ``tokens``, ``query``, ``hierarchy().describe`` — and the reservoir against a
plain sequential reference and a chi-square test of uniformity.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import neurograph as ng
from neurograph.memory import TokenMemory, decode_payload, encode_payload

CHAT = "signal.input.external.text.chat"
TOPICS = {
    "weather": "rain cloud storm wind forecast",
    "football": "goal match striker league referee",
    "markets": "stock price shares investor trading",
    "cooking": "recipe oven flour butter baking",
}


def _groups(n_per: int = 60, seed: int = 0, spread: float = 0.04) -> tuple[np.ndarray, list[str], list[dict]]:
    """Four tight groups in 8-D, each with its own label and topic words in the payload texts."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.6] * 8, [-0.6] * 8, [0.6, -0.6] * 4, [-0.6, 0.6] * 4])
    names = list(TOPICS)
    lab = np.repeat(np.arange(4), n_per)
    rng.shuffle(lab)
    x = centres[lab] + rng.normal(0, spread, (lab.size, 8))
    words = [TOPICS[names[i]].split() for i in range(4)]
    texts = [" ".join(rng.choice(words[k], 3)) + f" message {j}" for j, k in enumerate(lab)]
    payloads = [{"text": t, "row": j} for j, t in enumerate(texts)]
    return x.astype(np.float32), [names[k] for k in lab], payloads


# --- round trips ----------------------------------------------------------------------------------
def test_label_and_payload_round_trip_through_emit_and_token() -> None:
    eng = ng.Engine(seed=0)
    r = eng.emit(CHAT, [0.1] * 8, label="user", payload="it will rain")
    tok = eng.token(r.token_id)
    assert tok["label"] == "user" and tok["payload"] == "it will rain" and tok["signal"] == 0
    again = eng.emit(CHAT, [0.1] * 8, label="bot", payload={"text": "rain again", "n": [1, 2]})
    assert not again.is_novel and again.token_id == r.token_id
    tok = eng.token(r.token_id)
    assert tok["resonances"] == 1
    assert tok["sample"] == [{"signal": 1, "label": "bot", "payload": {"text": "rain again", "n": [1, 2]}}]
    assert tok["label_counts"] == {"user": 1, "bot": 1}
    row = eng.tokens().set_index("id").loc[r.token_id]
    assert row["label"] == "user" and row["text"] == "it will rain"


def test_emit_batch_memory_follows_the_batch_results() -> None:
    """Each token's origin, resonance count, label counts and sample agree with the rows of the batch that
    made it or resonated with it."""
    x, labels, payloads = _groups(30)
    eng = ng.Engine(seed=0)
    batch = eng.emit_batch(CHAT, x, labels=labels, payloads=payloads)
    ids = batch.token_ids.numpy()
    novel = batch.is_novel.numpy()
    for tid in np.unique(ids):
        rows = np.nonzero(ids == tid)[0]
        made, later = rows[novel[rows]], rows[~novel[rows]]
        tok = eng.token(int(tid))
        assert made.size == 1 and tok["signal"] == made[0]
        assert tok["label"] == labels[made[0]] and tok["payload"] == payloads[made[0]]
        assert tok["resonances"] == later.size
        want: dict[str, int] = {}
        for r in rows:
            want[labels[r]] = want.get(labels[r], 0) + 1
        assert tok["label_counts"] == want
        sample = [s["signal"] for s in tok["sample"]]
        assert len(sample) == min(later.size, 4) and set(sample) <= set(later.tolist())
        assert all(s["payload"] == payloads[s["signal"]] for s in tok["sample"])


def test_single_emits_fill_the_memory_as_a_batch_does() -> None:
    """The row path (``emit``) and the batch path record the same memory for the same results."""
    rng = np.random.default_rng(3)
    x = np.repeat(rng.uniform(-0.8, 0.8, (5, 8)), 12, axis=0)  # 5 points, 12 signals each: exact repeats
    labs = rng.choice(["a", "b"], 60).tolist()
    a, b = ng.Engine(seed=0), ng.Engine(seed=0)
    ra = a.emit_batch(CHAT, x, labels=labs, payloads=list(range(60)))
    rb = [b.emit(CHAT, v, label=lab, payload=i) for i, (v, lab) in enumerate(zip(x, labs))]
    assert ra.token_ids.tolist() == [r.token_id for r in rb]
    assert {t: a.token(t) for t in a.tokens()["id"]} | {} == {
        t: {**b.token(t), "mass": a.token(t)["mass"], "position": a.token(t)["position"]}
        for t in b.tokens()["id"]
    }


def test_one_label_for_a_whole_batch_and_rows_without_any() -> None:
    eng = ng.Engine(seed=0)
    x = np.random.default_rng(1).uniform(-1, 1, (20, 8))
    eng.emit_batch(CHAT, x, labels="sensor", payloads=[None] * 20)
    assert set(eng.tokens()["label"]) == {"sensor"}
    eng.emit_batch(CHAT, x + 0.001, labels=[None] * 20)
    assert eng.memory.payload_bytes == 0


def test_reservoir_is_bounded_and_counts_are_exact() -> None:
    eng = ng.Engine(seed=0, cdna=ng.CDNA().replace(memory_sample=3))
    first = eng.emit(CHAT, [0.2] * 8, label="origin").token_id
    rng = np.random.default_rng(0)
    labs = rng.choice(["a", "b", "c"], 200)
    for i in range(0, 200, 50):  # batches, several rows resonating with one token in each
        eng.emit_batch(
            CHAT, np.full((50, 8), 0.2), labels=list(labs[i : i + 50]), payloads=list(range(i, i + 50))
        )
    tok = eng.token(first)
    assert tok["resonances"] == 200 and len(tok["sample"]) == 3
    assert all(s["payload"] == s["signal"] - 1 for s in tok["sample"])  # payload i is signal i + 1
    want = {k: int((labs == k).sum()) for k in "abc"} | {"origin": 1}
    assert tok["label_counts"] == want
    assert len(eng.memory.kept) == 4  # the origin and the 3 sampled signals: evicted payloads are gone


def test_batch_sampling_equals_sequential_sampling() -> None:
    """One call with many rows per slot gives exactly the samples of one call per row (the oracle)."""
    rng = np.random.default_rng(5)
    slots = rng.integers(0, 7, 500)
    novel = np.zeros(500, bool)
    novel[:7] = True
    slots[:7] = np.arange(7)
    labels = rng.integers(-1, 4, 500).astype(np.int32)
    blobs = [encode_payload(int(i)) for i in range(500)]
    a, b = TokenMemory(4, salt=9), TokenMemory(4, salt=9)
    for mem in (a, b):
        mem.intern(["w", "x", "y", "z"])  # codes 0..3
    a.record(0, slots, novel, labels, blobs)
    for i in range(500):
        b.record(i, slots[i : i + 1], novel[i : i + 1], labels[i : i + 1], blobs[i : i + 1])
    np.testing.assert_array_equal(a.sample[:7], b.sample[:7])
    np.testing.assert_array_equal(a.resonances[:7], b.resonances[:7])
    assert a.kept == b.kept and a.payload_bytes == b.payload_bytes
    for s in range(7):
        assert a.label_counts(np.array([s])) == b.label_counts(np.array([s]))


def test_reservoir_sample_is_uniform() -> None:
    """Every one of ``n`` resonating signals ends in a sample of ``R`` with probability ``R / n``."""
    n, r, trials = 40, 4, 2000
    hits = np.zeros(n, np.int64)
    for salt in range(trials):
        mem = TokenMemory(r, salt=salt)
        mem.record(0, np.array([0]), np.array([True]))
        mem.record(1, np.zeros(n // 2, np.int64), np.zeros(n // 2, bool))  # two calls: batch and batch
        mem.record(1 + n // 2, np.zeros(n // 2, np.int64), np.zeros(n // 2, bool))
        sample = mem.sample[0]
        assert (sample >= 1).all() and len(set(sample.tolist())) == r
        hits[sample - 1] += 1
    expected = trials * r / n
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    p = stats.chi2.sf(chi2, n - 1)
    assert p > 1e-3, (p, hits)


def test_shrinking_the_sample_keeps_a_prefix_and_drops_payloads() -> None:
    eng = ng.Engine(seed=0)
    tid = eng.emit(CHAT, [0.3] * 8, payload="origin").token_id
    eng.emit_batch(CHAT, np.full((30, 8), 0.3), payloads=[f"p{i}" for i in range(30)])
    before = [s["signal"] for s in eng.token(tid)["sample"]]
    eng.update_cdna(memory_sample=2)
    assert [s["signal"] for s in eng.token(tid)["sample"]] == before[:2]
    assert len(eng.memory.kept) == 3


# --- bad input ------------------------------------------------------------------------------------
def _state(eng: ng.Engine) -> tuple:
    return (
        eng.tokens(),
        eng.edges(),
        eng.tick,
        eng.memory.payload_bytes,
        len(eng.memory.kept),
        eng.stats()["signals"],
    )


def _same(a: tuple, b: tuple) -> None:
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2:] == b[2:]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"payload": {"x": float("nan")}}, "payload"),
        ({"payload": object()}, "payload"),
        ({"payload": {1: "a"} | {"b": {2, 3}}}, "payload"),
        ({"payload": "x" * 70_000}, "payload"),
        ({"label": ""}, "label"),
        ({"label": 3}, "label"),
        ({"label": "a\nb"}, "label"),
        ({"label": "x" * 65}, "label"),
    ],
)
def test_bad_labels_and_payloads_are_refused_and_change_nothing(kwargs: dict, field: str) -> None:
    eng = ng.Engine(seed=0)
    eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-1, 1, (10, 8)), payloads=list(range(10)))
    before = _state(eng)
    with pytest.raises(ng.InvalidSignal) as err:
        eng.emit(CHAT, [0.0] * 8, **kwargs)
    assert err.value.field == field
    batch_kwargs = {k + "s": [v, None] for k, v in kwargs.items()}
    with pytest.raises(ng.InvalidSignal) as err:
        eng.emit_batch(CHAT, np.zeros((2, 8)), **batch_kwargs)
    assert err.value.field == field + "s" and err.value.index == 0
    _same(before, _state(eng))


def test_wrong_lengths_and_the_payload_quota() -> None:
    eng = ng.Engine(seed=0, cdna=ng.CDNA().replace(max_payload_bytes=100))
    eng.emit(CHAT, [0.5] * 8, payload="a" * 60)
    before = _state(eng)
    with pytest.raises(ng.InvalidSignal, match="labels"):
        eng.emit_batch(CHAT, np.zeros((3, 8)), labels=["a", "b"])
    with pytest.raises(ng.InvalidSignal, match="payloads"):
        eng.emit_batch(CHAT, np.zeros((3, 8)), payloads="abc")
    with pytest.raises(ng.QuotaExceeded) as err:
        eng.emit(CHAT, [-0.5] * 8, payload="b" * 60)
    assert err.value.quota == "max_payload_bytes"
    _same(before, _state(eng))


def test_store_payloads_false_keeps_labels_but_no_payload() -> None:
    eng = ng.Engine(seed=0, store_payloads=False)
    tid = eng.emit(CHAT, [0.1] * 8, label="user", payload="private message").token_id
    tok = eng.token(tid)
    assert tok["label"] == "user" and tok["payload"] is None
    assert eng.memory.payload_bytes == 0 and pd.isna(eng.tokens()["text"].iloc[0])
    with pytest.raises(ng.InvalidArgument, match="store_payloads"):
        ng.Engine(store_payloads="no")


def test_store_payloads_false_logs_no_payload(tmp_path) -> None:
    path = tmp_path / "private"
    with ng.Engine(path=path, store_payloads=False) as eng:
        eng.emit(CHAT, [0.1] * 8, label="user", payload="secret words here")
    raw = b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())
    assert b"secret words here" not in raw
    eng = ng.Engine.open(path)
    assert eng.options["store_payloads"] is False and eng.token(0)["label"] == "user"
    eng.close()


# --- persistence ----------------------------------------------------------------------------------
def test_memory_survives_snapshot_and_log_replay(tmp_path) -> None:
    x, labels, payloads = _groups(40)
    path = tmp_path / "store"
    eng = ng.Engine(path=path, seed=0)
    eng.emit_batch(CHAT, x[:100], labels=labels[:100], payloads=payloads[:100])
    eng.save()  # a snapshot carries the memory ...
    eng.emit_batch(CHAT, x[100:], labels=labels[100:], payloads=payloads[100:])  # ... the log the rest
    eng.emit(CHAT, x[0], label="late", payload="the last one")
    want = {tid: eng.token(tid) for tid in eng.tokens()["id"]}
    frame = eng.tokens()
    eng.store.close()  # as a kill would leave it: no closing snapshot
    again = ng.Engine.open(path)
    pd.testing.assert_frame_equal(again.tokens(), frame)
    assert {tid: again.token(tid) for tid in again.tokens()["id"]} == want
    again.close()


# --- queries --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def topics() -> tuple[ng.Engine, list[str]]:
    x, labels, payloads = _groups(60)
    eng = ng.Engine(seed=0, cdna=ng.CDNA.calibrate(x))
    eng.emit_batch(CHAT, x, labels=labels, payloads=payloads)
    eng.hierarchy()
    return eng, labels


def test_query_by_label_and_text(topics) -> None:
    eng, _labels = topics
    frame = eng.tokens()
    level0 = frame[frame["level"] == 0]
    got = eng.query("find all tokens where label = 'weather'")
    assert set(got["label"]) == {"weather"} and len(got) == int((frame["label"] == "weather").sum())
    assert int((level0["label"] == "weather").sum()) == len(got) - 1  # and the weather field
    both = eng.query("find all tokens where level = 0 and label in ('weather', 'cooking', 'nobody')")
    assert set(both["label"]) == {"weather", "cooking"}
    assert len(eng.query("find all tokens where label = 'nobody'")) == 0
    rain = eng.query("find all tokens where text contains 'RAIN'")
    assert len(rain) > 0 and rain["text"].str.lower().str.contains("rain").all()
    assert (rain["label"] == "weather").all()
    none = eng.query("find all tokens where level = 0 and text not contains 'message'")
    assert len(none) == 0
    ordered = eng.query("find all tokens where level = 0 order by label desc limit 3")
    assert list(ordered["label"]) == ["weather"] * 3


def test_fields_have_the_majority_label(topics) -> None:
    eng, _ = topics
    fields = eng.query("find all fields")
    assert sorted(fields["label"]) == sorted(TOPICS)
    assert len(eng.query("find all fields where label = 'markets'")) == 1


def test_the_seeds_type_query_suggests_label() -> None:
    eng = ng.Engine()
    with pytest.raises(ng.InvalidQuery, match=r"label = 'user'") as err:
        eng.query("find all nodes where type = 'user'")
    assert err.value.column == 29  # under 'user'


def test_contains_needs_a_text_column() -> None:
    eng = ng.Engine()
    eng.emit(CHAT, [0.0] * 8, payload="x")
    with pytest.raises(ng.InvalidQuery, match="contains needs a text column"):
        eng.query("find all tokens where mass contains 'a'")


# --- fields describe themselves -------------------------------------------------------------------
def test_describe_names_each_field_by_its_majority_label(topics) -> None:
    eng, _ = topics
    h = eng.hierarchy(rebuild=False)
    fields = h.fields(1)
    assert sorted(fields["name"]) == sorted(TOPICS)
    for fid in fields["id"]:
        d = h.describe(int(fid))
        top = next(iter(d.labels))
        assert d.name == top and d.labels[top] >= 0.9 * sum(d.labels.values())
        assert set(d.terms[:3]) <= set(TOPICS[top].split())  # the topic's own words set it apart
        assert len(d.exemplars) == 5 and d.exemplars["distance"].is_monotonic_increasing
        assert all(
            isinstance(t, str) and any(w in t for w in TOPICS[top].split()) for t in d.exemplars["text"]
        )
        assert d.tokens == d.size and d.mass > 0
        assert d.to_dict()["exemplars"][0]["payload"]["text"] == d.exemplars["text"].iloc[0]


def test_an_unlabelled_text_field_is_named_by_its_terms() -> None:
    x, _, payloads = _groups(40, seed=2)
    eng = ng.Engine(seed=0, cdna=ng.CDNA.calibrate(x))
    eng.emit_batch(CHAT, x, payloads=payloads)
    h = eng.hierarchy()
    names = set(h.fields(1)["name"])
    for words in TOPICS.values():
        assert any(set(name.split()) <= set(words.split()) for name in names), (names, words)


def test_process_text_keeps_the_text_and_ids() -> None:
    async def run() -> ng.Engine:
        eng = ng.Engine(seed=0)
        async with ng.SignalPipeline(eng) as pipe:
            await pipe.process_text("the storm is coming", user_id=7, chat_id="c1", label="user")
            await pipe.process_batch(["sunny", "windy"], labels=["a", "b"])
        return eng

    eng = asyncio.run(run())
    first = eng.token(0)
    assert first["label"] == "user"
    assert first["payload"] == {"text": "the storm is coming", "user_id": 7, "chat_id": "c1"}
    assert list(eng.tokens()["text"]) == ["the storm is coming", "sunny", "windy"]


def test_payload_encoding_is_canonical() -> None:
    a = encode_payload({"b": 1, "a": [1.5, None, "é"]})
    assert a == encode_payload({"a": [1.5, None, "é"], "b": 1})
    assert decode_payload(a) == {"a": [1.5, None, "é"], "b": 1}
    assert decode_payload(encode_payload("j{not json")) == "j{not json"
    assert math.isclose(decode_payload(encode_payload(0.1)), 0.1)


@pytest.mark.gpu
def test_labels_and_payloads_on_cuda_match_the_cpu() -> None:
    if not __import__("torch").cuda.is_available():
        pytest.skip("needs a CUDA GPU; none is available here")
    x, labels, payloads = _groups(40)
    out = []
    for device in ("cpu", "cuda"):
        eng = ng.Engine(device=device, seed=0)
        eng.emit_batch(CHAT, x[:100], labels=labels[:100], payloads=payloads[:100])
        for v, lab, p in zip(x[100:110], labels[100:110], payloads[100:110]):
            eng.emit(CHAT, v, label=lab, payload=p)
        out.append({tid: eng.token(tid) for tid in eng.tokens()["id"]})
    geometry = ("mass", "position")
    strip = [{t: {k: v for k, v in d.items() if k not in geometry} for t, d in o.items()} for o in out]
    assert strip[0] == strip[1]


def test_a_bad_label_among_repeated_good_ones_names_its_row() -> None:
    eng = ng.Engine(seed=0)
    with pytest.raises(ng.InvalidSignal) as err:
        eng.emit_batch(CHAT, np.zeros((4, 8)), labels=["ok", "ok", ["not", "a", "label"], "ok"])
    assert err.value.field == "labels" and err.value.index == 2
    with pytest.raises(ng.InvalidSignal) as err:
        eng.emit_batch(CHAT, np.zeros((3, 8)), labels=["ok", "x" * 65, "x" * 65])
    assert err.value.index == 1 and "label_max_chars" in str(err.value)
    assert eng.tick == 0
