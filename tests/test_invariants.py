"""Random sequences of operations (signals, dynamics, hierarchy, learning, CDNA changes) keep every CDNA
invariant (the Guardian's promise, DESIGN §6)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurograph as ng
from neurograph.errors import InvalidCDNA, InvalidSignal, QuotaExceeded

CHAT = "signal.input.external.text.chat"

ops = st.lists(
    st.one_of(
        st.tuples(st.just("emit"), st.integers(0, 2**31 - 1), st.floats(0.05, 3.0)),
        st.tuples(st.just("batch"), st.integers(0, 2**31 - 1), st.floats(0.05, 3.0)),
        st.tuples(st.just("add"), st.integers(0, 2**31 - 1), st.floats(0.05, 1.0)),
        st.tuples(st.just("cdna"), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0)),
        st.tuples(st.just("rollback"), st.integers(0, 1), st.floats(0, 1)),
        st.tuples(st.just("bad"), st.integers(0, 3), st.floats(0, 1)),
        st.tuples(st.just("step"), st.integers(1, 30), st.floats(0, 1)),
        st.tuples(st.just("hierarchy"), st.integers(0, 1), st.floats(0, 1)),
        st.tuples(st.just("learn"), st.integers(0, 1), st.floats(0, 1)),
    ),
    min_size=1,
    max_size=25,
)


def assert_invariants(eng: ng.Engine) -> None:
    c = eng.cdna
    t, e = eng.token_state, eng.edge_state
    n, m = t.count, e.count
    alive = t.alive[:n].numpy()
    pos = t.pos[:n].numpy()[alive]
    assert (pos >= np.asarray(c.axis_min, np.float32)).all() and (
        pos <= np.asarray(c.axis_max, np.float32)
    ).all()
    field = t.level[:n].numpy()[alive] > 0
    mass = t.mass[:n].numpy()[alive]
    assert (mass >= np.float32(c.mass_min)).all()
    assert (mass[~field] <= np.float32(c.mass_max)).all() and (
        mass[field] <= np.float32(c.field_mass_max)
    ).all()
    speed = np.sqrt((t.vel[:n].numpy()[alive].astype(np.float64) ** 2).sum(1))
    assert (speed <= c.max_speed * (1 + 1e-5)).all()
    ealive = e.alive[:m].numpy()
    w = e.weight[:m].numpy()[ealive]
    assert (w >= np.float32(c.weight_min)).all() and (w <= np.float32(c.weight_max)).all()
    conf = e.confidence[:m].numpy()[ealive]
    assert ((conf >= 0) & (conf <= 1)).all()
    assert int(e.degree.max()) <= c.max_degree
    # the adjacency tables hold exactly the alive learned (non-structural) edges, each on both endpoints
    learned = ealive & ((e.kind[:m].numpy().astype(np.int64) & 0xF0) != 0x60)
    deg = np.bincount(np.concatenate([e.src[:m].numpy()[learned], e.dst[:m].numpy()[learned]]), minlength=n)
    np.testing.assert_array_equal(deg[:n], e.degree[:n].numpy())
    assert t.n_alive == int(alive.sum()) <= c.max_tokens
    assert e.n_alive == int(ealive.sum()) <= c.max_edges


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=ops, profile=st.sampled_from(["default", "explorer", "analyst", "creative"]))
def test_random_operations_keep_every_invariant(sequence, profile):
    eng = ng.Engine(cdna=ng.CDNA.profile(profile).replace(max_tokens=400, max_degree=6))
    for op, seed, size in sequence:
        rng = np.random.default_rng(seed)
        try:
            if op == "emit":
                eng.emit(CHAT, rng.uniform(-size, size, 8), priority=int(rng.integers(0, 256)))
            elif op == "batch":
                eng.emit_batch(
                    CHAT,
                    rng.uniform(-size, size, (int(rng.integers(1, 120)), 8)) * 0.3,
                    priorities=rng.integers(0, 256, 1)[0],
                )
            elif op == "add":
                eng.add_tokens(rng.uniform(-size, size, (int(rng.integers(1, 30)), 8)))
            elif op == "cdna":
                eng.update_cdna(
                    max_degree=int(rng.integers(1, 8)),
                    learning_rate=float(rng.uniform(0.01, 1.0)),
                    axis_max=tuple(float(v) for v in rng.uniform(0.2, 1.0, 8)),
                    mass_max=float(rng.uniform(1.0, 50.0)),
                    weight_max=float(rng.uniform(0.3, 1.0)),
                )
            elif op == "rollback":
                eng.rollback_cdna()
            elif op == "step":
                eng.step(seed)
            elif op == "hierarchy":
                eng.hierarchy()
            elif op == "learn":
                eng.learn()
            else:
                bad = [[0.1] * 7, [float("nan")] * 8, [0.1] * 8, [0.1] * 8][seed]
                eng.emit(CHAT if seed != 2 else "BAD TYPE", bad, priority=300 if seed == 3 else 1)
        except (QuotaExceeded, InvalidSignal, InvalidCDNA):
            pass
        assert_invariants(eng)
