"""Connection learning: Hebbian rules, decay over engine time, promotion and pruning match their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neurograph as ng
from neurograph.emit.hebbian import (
    decay_confidence,
    hebbian_failure,
    hebbian_success,
    promote,
    prune_mask,
)
from neurograph.kinds import (
    ASSOCIATED_WITH,
    EDGE_GROUPS,
    EDGE_KINDS,
    HYPOTHESIS,
    IMMUTABLE,
    LEARNABLE,
    PART_OF,
    is_learned_kind,
)

CHAT = "signal.input.external.text.chat"
CDNA = ng.CDNA(learning_rate=0.1, decay_rate=0.01, confidence_floor=0.05, promotion_evidence=5)


# --- the rules as pure functions -----------------------------------------------------------------------
def test_hebbian_success_formula():
    conf = np.array([0.5, 0.95, 0.5, 0.5])
    weight = np.array([0.2, 0.2, 0.9, 0.4])
    evidence = np.array([1, 1, 4, 3])
    mut = np.array([HYPOTHESIS, LEARNABLE, HYPOTHESIS, IMMUTABLE])
    count = np.array([2, 1, 1, 3])
    res = np.array([0.8, 0.6, 0.1, 0.9])
    c, w, ev, m = hebbian_success(conf, weight, evidence, mut, count, res, CDNA)
    lr = CDNA.learning_rate
    np.testing.assert_allclose(c[:3], np.minimum(1.0, conf[:3] + count[:3] * lr))  # + m lr, capped at 1
    np.testing.assert_allclose(w[:3], res[:3] + (1 - lr) ** count[:3] * (weight[:3] - res[:3]))
    np.testing.assert_array_equal(ev[:3], evidence[:3] + count[:3])
    assert m.tolist() == [HYPOTHESIS, LEARNABLE, LEARNABLE, IMMUTABLE]  # evidence 5 promotes
    assert (c[3], w[3], ev[3]) == (conf[3], weight[3], evidence[3])  # immutable edges never learn


def test_hebbian_failure_lowers_by_half_the_learning_rate():
    conf = np.array([0.5, 0.02, 0.5])
    out = hebbian_failure(conf, np.array([HYPOTHESIS, LEARNABLE, IMMUTABLE]), CDNA)
    np.testing.assert_allclose(out, [0.5 - CDNA.learning_rate / 2, 0.0, 0.5])


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_decay_promote_prune_formulas(lib):
    conf = np.array([0.5, 0.5, 0.5, 0.1, 0.04, 0.04, 0.04], np.float32)
    mut = np.array([HYPOTHESIS, LEARNABLE, IMMUTABLE, HYPOTHESIS, LEARNABLE, IMMUTABLE, HYPOTHESIS], np.int8)
    elapsed = np.array([20, 20, 20, 30, 0, 0, 0], np.float32)
    evidence = np.array([5, 9, 9, 4, 0, 0, 0], np.int32)
    kind = np.array([ASSOCIATED_WITH] * 6 + [PART_OF], np.int16)
    wrap = (lambda a: torch.from_numpy(a)) if lib == "torch" else (lambda a: a)
    back = (lambda a: a.numpy()) if lib == "torch" else (lambda a: a)
    c = back(decay_confidence(wrap(conf), wrap(mut), wrap(elapsed), CDNA))
    np.testing.assert_allclose(c, [0.5 - 0.01 * 20, 0.5, 0.5, 0.0, 0.04, 0.04, 0.04], atol=1e-7)
    assert c.dtype == np.float32
    m = back(promote(wrap(mut), wrap(evidence), CDNA))
    assert m.tolist() == [LEARNABLE, LEARNABLE, IMMUTABLE, HYPOTHESIS, LEARNABLE, IMMUTABLE, HYPOTHESIS]
    p = back(prune_mask(wrap(c), wrap(mut), wrap(kind), CDNA))
    assert p.tolist() == [False, False, False, True, True, False, False]  # not immutable, not structural
    assert back(is_learned_kind(wrap(kind))).tolist() == [True] * 6 + [False]


def test_edge_kinds_follow_the_design():
    for name, code in EDGE_GROUPS.items():
        assert EDGE_KINDS[name] == code
    assert EDGE_KINDS["associated_with"] == 0x50 and EDGE_KINDS["part_of"] == 0x60


# --- upkeep on an engine ------------------------------------------------------------------------------
def linked_pair(cdna: ng.CDNA = CDNA) -> tuple[ng.Engine, int, int]:
    """An engine with one hypothesis edge between tokens a and b, reinforced last at tick 1."""
    eng = ng.Engine(cdna=cdna)
    a = eng.emit(CHAT, [0.0] * 8).token_id
    b = eng.emit(CHAT, [0.15] + [0.0] * 7).token_id
    return eng, a, b


def advance(eng: ng.Engine, ticks: int) -> None:
    """Signals far away from everything (they resonate with one token and link nothing)."""
    eng.emit_batch(CHAT, np.full((ticks, 8), 0.9))


def edge(eng: ng.Engine, a: int, b: int) -> dict | None:
    e = eng.edges()
    row = e[((e.source == a) & (e.target == b)) | ((e.source == b) & (e.target == a))]
    return None if row.empty else row.iloc[0].to_dict()


def test_hypotheses_decay_linearly_over_engine_time_and_compose():
    eng, a, b = linked_pair()
    e0 = edge(eng, a, b)
    assert e0["mutability"] == "hypothesis" and e0["updated"] == 1
    advance(eng, 19)  # tick 21
    stats = eng.learn()
    assert stats.decayed == 1 and stats.pruned == 0
    assert edge(eng, a, b)["confidence"] == pytest.approx(e0["confidence"] - 0.01 * (21 - 1), abs=1e-6)
    advance(eng, 10)  # tick 31: decays only by the 10 ticks since the last upkeep
    eng.learn()
    assert edge(eng, a, b)["confidence"] == pytest.approx(e0["confidence"] - 0.01 * 30, abs=1e-6)
    eng.learn()  # no time passed: nothing changes
    assert edge(eng, a, b)["confidence"] == pytest.approx(e0["confidence"] - 0.01 * 30, abs=1e-6)


def test_edges_below_the_floor_are_pruned_and_the_tables_stay_consistent():
    eng, a, b = linked_pair()
    advance(eng, 60)  # 0.5 - 0.01 * 61 < 0.05
    events = []
    eng.subscribe("learning.*", events.append, channels=["metrics"])
    stats = eng.learn()
    assert stats.pruned == 1 and edge(eng, a, b) is None
    assert int(eng.edge_state.degree.sum()) == 2 * int((eng.edges()["relation"] != "structural").sum())
    assert events and events[0].data["pruned"] == 1


def test_reinforcement_resets_the_decay_clock_and_promotion_stops_it():
    eng, a, b = linked_pair()
    for _ in range(4):  # four more co-activations: evidence 5 -> learnable (promoted in emit)
        eng.emit(CHAT, [0.14] + [0.0] * 7)
    e = edge(eng, a, b)
    assert e["mutability"] == "learnable" and e["evidence"] == 5
    advance(eng, 100)
    eng.learn()
    assert edge(eng, a, b)["confidence"] == pytest.approx(e["confidence"])  # learnable edges do not decay


def test_lowering_promotion_evidence_promotes_on_learn():
    eng, a, b = linked_pair()
    eng.update_cdna(promotion_evidence=1)
    stats = eng.learn()
    assert stats.promoted == 1 and edge(eng, a, b)["mutability"] == "learnable"


def test_failures_lower_confidence_by_half_the_learning_rate():
    eng, a, b = linked_pair()
    c0 = edge(eng, a, b)["confidence"]
    stats = eng.learn(failed=[[a, b], [a, 10**6]])  # the second pair has no edge: ignored
    assert stats.weakened == 1
    assert edge(eng, a, b)["confidence"] == pytest.approx(c0 - CDNA.learning_rate / 2 - 0.01 * (eng.tick - 1))


def test_structural_edges_are_never_touched():
    x = np.concatenate([np.full((6, 8), -0.5), np.full((6, 8), 0.5)]) + np.linspace(0, 0.01, 12)[:, None]
    eng = ng.Engine(cdna=CDNA.replace(min_field_size=3, max_levels=1))
    eng.add_tokens(x)
    eng.hierarchy()
    before = eng.edges()
    assert (before["relation"] == "structural").sum() == 12
    advance(eng, 500)
    eng.learn()
    after = eng.edges()
    assert (after["relation"] == "structural").sum() == 12


def test_the_upkeep_clock_survives_a_snapshot(tmp_path):
    eng = ng.Engine(cdna=CDNA, path=tmp_path / "store")
    a = eng.emit(CHAT, [0.0] * 8).token_id
    b = eng.emit(CHAT, [0.15] + [0.0] * 7).token_id
    c0 = edge(eng, a, b)["confidence"]
    advance(eng, 19)
    eng.learn()  # tick 21
    eng.close()  # snapshot
    again = ng.Engine.open(tmp_path / "store")
    assert again._learned_at == 21
    advance(again, 10)
    again.learn()  # decays by 10 more ticks, not 30 from the last reinforcement
    assert edge(again, a, b)["confidence"] == pytest.approx(c0 - 0.01 * 30, abs=1e-6)
    again.close()
