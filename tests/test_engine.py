"""Engine.emit / emit_batch: semantics of DESIGN §3, typed errors, quotas, the seed's name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import neurograph as ng
from neurograph.errors import InvalidSignal, QuotaExceeded

CHAT = "signal.input.external.text.chat"


def snapshot(eng: ng.Engine) -> tuple:
    """Everything a rejected call must leave unchanged."""
    stats = {k: v for k, v in eng.stats().items() if k not in ("rejected", "quota_refusals", "index")}
    return eng.tokens().to_dict(), eng.edges().to_dict(), stats, eng.tick


def test_first_emit_is_novel_with_no_neighbours(device):
    eng = ng.Engine(device=device)
    r = eng.emit(CHAT, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], priority=200)
    assert r.is_novel and r["is_novel"]
    assert r.neighbors == []
    assert r.anomaly_score == 1.0
    assert r.token_id == 0


def test_same_vector_again_is_familiar_and_resonates(device):
    eng = ng.Engine(device=device)
    v = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    first = eng.emit(CHAT, v)
    again = eng.emit(CHAT, v)
    assert not again.is_novel
    assert again.token_id == first.token_id
    (nbr,) = again.neighbors
    assert nbr["token_id"] == first.token_id
    assert nbr["distance"] == pytest.approx(0.0, abs=1e-6)
    assert nbr["resonance"] == pytest.approx(1.0, abs=1e-6)
    assert nbr["token_type"] == "concept"
    assert nbr["layer_affinity"] == "abstract"
    assert eng.token(first.token_id)["hits"] == 2


def test_token_is_never_its_own_neighbour(device):
    eng = ng.Engine(device=device)
    rng = np.random.default_rng(3)
    batch = eng.emit_batch(CHAT, rng.uniform(-0.2, 0.2, (300, 8)))
    novel = batch.is_novel.numpy()
    own = (batch.neighbor_ids == batch.token_ids[:, None]).numpy()
    assert not own[novel].any()


def test_far_vector_is_novel_again(device):
    eng = ng.Engine(device=device)
    eng.emit(CHAT, [0.0] * 8)
    far = [0.0] * 7 + [eng.cdna.neighbor_radius * 1.5]
    r = eng.emit(CHAT, far)
    assert r.is_novel and r.neighbors == [] and r.anomaly_score == 1.0
    near = [0.0] * 7 + [eng.cdna.novelty_threshold * 0.5]
    r2 = eng.emit(CHAT, near)
    assert not r2.is_novel and r2.token_id == 0


def test_between_threshold_and_radius_is_novel_with_neighbours():
    eng = ng.Engine()
    eng.emit(CHAT, [0.0] * 8)
    r = eng.emit(CHAT, [0.0] * 7 + [0.15])
    assert r.is_novel
    assert [n["token_id"] for n in r.neighbors] == [0]
    assert r.anomaly_score == pytest.approx(0.15 / 0.2, rel=1e-5)
    assert r.resonance == pytest.approx(math.exp(-0.15 / 0.2), rel=1e-5)
    edges = eng.edges()
    assert len(edges) == 1 and edges.mutability[0] == "hypothesis" and edges.relation[0] == "associative"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vector": [0.1] * 7}, "vector"),
        ({"vector": [0.1] * 7 + [float("nan")]}, "vector"),
        ({"vector": [0.1] * 7 + [float("inf")]}, "vector"),
        ({"vector": "not numbers"}, "vector"),
        ({"priority": 256}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"event_type": "Signal Input"}, "event_type"),
        ({"event_type": "signal..input"}, "event_type"),
        ({"event_type": "signal"}, "event_type"),
        ({"event_type": "signal." + "x" * 130}, "event_type"),
        ({"kind": "dragon"}, "kind"),
    ],
    ids=[
        "7-numbers",
        "nan",
        "inf",
        "text",
        "priority-256",
        "priority-neg",
        "priority-float",
        "type-spaces",
        "type-empty-segment",
        "type-one-segment",
        "type-too-long",
        "unknown-kind",
    ],
)
def test_bad_input_raises_typed_error_and_changes_nothing(kwargs, field):
    eng = ng.Engine()
    eng.emit(CHAT, [0.0] * 8)
    eng.emit(CHAT, [0.0] * 7 + [0.15])
    before = snapshot(eng)
    call = {"event_type": CHAT, "vector": [0.1] * 8, "priority": 128, **kwargs}
    with pytest.raises(InvalidSignal) as info:
        eng.emit(**call)
    assert info.value.field == field
    assert field.split("_")[0] in str(info.value)
    assert snapshot(eng) == before


def test_bad_batch_row_names_the_row_and_changes_nothing():
    eng = ng.Engine()
    eng.emit(CHAT, [0.0] * 8)
    before = snapshot(eng)
    vectors = np.zeros((5, 8))
    vectors[3, 2] = np.nan
    with pytest.raises(InvalidSignal) as info:
        eng.emit_batch(CHAT, vectors)
    assert info.value.index == 3 and "row 3" in str(info.value) and "motor" in str(info.value)
    with pytest.raises(InvalidSignal, match="priorities"):
        eng.emit_batch(CHAT, np.zeros((5, 8)), priorities=[1, 2, 3])
    with pytest.raises(InvalidSignal, match="event_type"):
        eng.emit_batch([CHAT] * 4 + ["BAD"], np.zeros((5, 8)))
    assert snapshot(eng) == before


def test_out_of_box_is_clamped_or_rejected_when_strict():
    eng = ng.Engine()
    r = eng.emit(CHAT, [5.0] + [0.0] * 7)
    assert r.is_novel
    assert eng.tokens()["physical"][0] == pytest.approx(1.0)
    assert eng.guardian.clamped == 1
    strict = ng.Engine(cdna="analyst")
    with pytest.raises(InvalidSignal, match="strict"):
        strict.emit(CHAT, [5.0] + [0.0] * 7)
    assert strict.stats()["tokens"] == 0


def test_quota_max_tokens_refuses_the_101st_novel_signal():
    eng = ng.Engine(cdna=ng.CDNA(max_tokens=100))
    g = np.linspace(-0.9, 0.9, 11)  # a grid with spacing 0.18 > novelty threshold: every point novel
    vectors = np.zeros((101, 8))
    vectors[:, :2] = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)[:101]
    for v in vectors[:100]:
        assert eng.emit(CHAT, v).is_novel
    events = []
    eng.subscribe("guardian.*", events.append)
    before = snapshot(eng)
    with pytest.raises(QuotaExceeded) as info:
        eng.emit(CHAT, vectors[100])
    assert info.value.quota == "max_tokens" and info.value.limit == 100 and info.value.requested == 101
    assert snapshot(eng) == before
    assert [e.event_type for e in events] == ["guardian.quota"]
    # still usable: a familiar signal needs no growth
    assert not eng.emit(CHAT, vectors[0]).is_novel


def test_quota_refuses_a_whole_batch_before_growing():
    eng = ng.Engine(cdna=ng.CDNA(max_tokens=50))
    before = snapshot(eng)
    with pytest.raises(QuotaExceeded):
        eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-1, 1, (60, 8)))
    assert snapshot(eng) == before


def test_signal_system_keeps_the_seed_api():
    system = ng.SignalSystem()
    out = system.emit(
        event_type="signal.input.text", vector=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], priority=200
    )
    assert out["token_id"] == 0 and out["is_novel"] is True
    assert set(out.keys()) == set(ng.emit.RESULT_KEYS)
    assert isinstance(out.to_dict()["neighbors"], list)


def test_batch_result_rows_and_tensors():
    eng = ng.Engine()
    rng = np.random.default_rng(1)
    b = eng.emit_batch(CHAT, rng.uniform(-0.3, 0.3, (64, 8)), priorities=rng.integers(0, 256, 64))
    assert isinstance(b.token_ids, torch.Tensor) and b.token_ids.shape == (64,)
    assert b.neighbor_ids.shape == (64, eng.cdna.max_neighbors)
    assert b.neighbor_distances.dtype == torch.float32
    row = b[5]
    assert row.token_id == int(b.token_ids[5])
    assert [n["token_id"] for n in row.neighbors] == [i for i in b.neighbor_ids[5].tolist() if i >= 0]
    df = b.to_pandas()
    assert len(df) == 64 and df.is_novel.sum() == int(b.is_novel.sum())
    assert eng.tick == 64 and eng.stats()["signals"] == 64


def test_spreading_activation_and_triggered_actions():
    eng = ng.Engine()
    goal = eng.emit(CHAT, [0.0] * 8, kind="goal").token_id
    eng.emit(CHAT, [0.0] * 7 + [0.12], kind="concept")  # novel, linked to the goal by a weak hypothesis
    first = eng.emit(CHAT, [0.0] * 7 + [0.12])  # familiar: resonates, but the new edge conducts too little
    assert first.activation_spread == 0 and first.triggered_actions == []
    for _ in range(5):  # co-activation pulls the edge weight toward the resonance (Hebbian)
        r = eng.emit(CHAT, [0.0] * 7 + [0.12])
    assert r.activation_spread >= 1
    assert goal in r.triggered_actions
    assert eng.tokens().set_index("id").activation[goal] > 0.25


def test_signals_are_published_on_the_bus():
    eng = ng.Engine()
    got = []
    eng.subscribe("signal.input.*", got.append)
    eng.emit(CHAT, [0.0] * 8, priority=10, user="ada")
    eng.emit_batch("signal.input.external.vision.object", np.zeros((3, 8)))
    assert [e.event_type for e in got] == [CHAT] + ["signal.input.external.vision.object"] * 3
    assert got[0].channel == "signals" and got[0].data["meta"] == {"user": "ada"}
    assert got[0].data["is_novel"] is True
    assert [e.data["is_novel"] for e in got[1:]] == [False, False, False]


def test_empty_batch():
    eng = ng.Engine()
    b = eng.emit_batch(CHAT, np.zeros((0, 8)))
    assert len(b) == 0 and eng.tick == 0


def test_add_tokens_then_emit():
    eng = ng.Engine()
    ids = eng.add_tokens(np.array([[0.0] * 8, [0.5] * 8]), kinds="memory")
    assert ids.tolist() == [0, 1]
    r = eng.emit(CHAT, [0.01] * 8)
    assert not r.is_novel and r.token_id == 0
    assert eng.tokens().kind.tolist() == ["memory", "memory"]
