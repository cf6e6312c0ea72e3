"""emit_batch has sequential semantics: property tests against the brute-force oracle (tests/oracle.py).

``emit_batch(V)`` must give the ``is_novel``, ``token_id`` and neighbour ids of emitting V's rows one by one,
except that reinforcement moves land after the batch (the oracle defers them likewise). ``emit`` one by one
must match the oracle with immediate moves.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurograph as ng
from tests.oracle import OracleEmitter

CHAT = "signal.input.external.text.chat"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw):
    """Random or clustered 8-D data, sized so that novel rows, familiar rows and in-batch conflicts mix."""
    seed = draw(st.integers(0, 2**31 - 1))
    kind = draw(st.sampled_from(["uniform", "clustered", "duplicates", "clump"]))
    n = draw(st.integers(1, 160))
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.uniform(-0.3, 0.3, (n, 8))
    elif kind == "clustered":
        centers = rng.uniform(-0.8, 0.8, (draw(st.integers(1, 6)), 8))
        x = centers[rng.integers(0, len(centers), n)] + 0.04 * rng.standard_normal((n, 8))
    elif kind == "duplicates":
        base = rng.uniform(-0.5, 0.5, (draw(st.integers(1, 5)), 8))
        x = base[rng.integers(0, len(base), n)]
    else:  # a dense clump: many rows within the threshold of each other
        x = 0.2 + 0.01 * rng.standard_normal((n, 8))
    return x.astype(np.float32)


def _compare(rows, expected):
    for i, (got, want) in enumerate(zip(rows, expected)):
        assert got.is_novel == want["is_novel"], f"row {i}"
        assert got.token_id == want["token_id"], f"row {i}"
        assert [n["token_id"] for n in got.neighbors] == want["neighbors"], f"row {i}"
        np.testing.assert_allclose(
            [n["distance"] for n in got.neighbors], want["distances"], rtol=1e-5, atol=1e-6
        )


@SETTINGS
@given(pre=datasets(), data=datasets(), k=st.sampled_from([1, 4, 16]))
def test_emit_batch_equals_sequential_oracle(pre, data, k):
    cdna = ng.CDNA(max_neighbors=k)
    eng = ng.Engine(cdna=cdna)
    oracle = OracleEmitter(
        radius=cdna.neighbor_radius,
        threshold=cdna.novelty_threshold,
        k=k,
        lr=cdna.learning_rate,
        defer_moves=True,
    )
    for part in (pre, data, data[::-1]):  # residents first, then batches hitting them
        batch = eng.emit_batch(CHAT, part)
        _compare(batch, [oracle.emit(v) for v in part])
        oracle.flush()


@SETTINGS
@given(data=datasets())
def test_emit_one_by_one_equals_oracle_with_immediate_moves(data):
    eng = ng.Engine()
    c = eng.cdna
    oracle = OracleEmitter(
        radius=c.neighbor_radius, threshold=c.novelty_threshold, k=c.max_neighbors, lr=c.learning_rate
    )
    _compare([eng.emit(CHAT, v) for v in data], [oracle.emit(v) for v in data])


@pytest.mark.parametrize(
    "scale", [(1.0,) * 8, (4.0, 1.0, 1.0, 0.25, 1.0, 2.0, 1.0, 1.0)], ids=["plain", "weighted"]
)
def test_batch_equals_oracle_with_weighted_metric_and_large_index(scale):
    """Enough residents that the tree, its buffer and its dirty set all take part."""
    rng = np.random.default_rng(7)
    cdna = ng.CDNA(axis_scale=scale)
    eng = ng.Engine(cdna=cdna)
    oracle = OracleEmitter(
        radius=cdna.neighbor_radius,
        threshold=cdna.novelty_threshold,
        k=cdna.max_neighbors,
        lr=cdna.learning_rate,
        scale=scale,
        defer_moves=True,
    )
    centers = rng.uniform(-0.7, 0.7, (20, 8))
    for _ in range(4):
        x = (centers[rng.integers(0, 20, 1500)] + 0.06 * rng.standard_normal((1500, 8))).astype(np.float32)
        _compare(eng.emit_batch(CHAT, x), [oracle.emit(v) for v in x])
        oracle.flush()
    assert eng.index.rebuilds >= 1
