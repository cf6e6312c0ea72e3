"""The single-signal fast path of ``emit`` equals ``emit_batch`` of one row, result and state alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurograph as ng

CHAT = "signal.input.external.text.chat"


def assert_same_state(a: ng.Engine, b: ng.Engine) -> None:
    for (name, ta), (_, tb) in zip(a.token_state.tensors(), b.token_state.tensors()):
        assert torch.equal(ta[: a.token_state.count], tb[: b.token_state.count]), name
    for (name, ta), (_, tb) in zip(a.edge_state.tensors(), b.edge_state.tensors()):
        assert torch.equal(ta[: a.edge_state.count], tb[: b.edge_state.count]), name
    n = a.token_state.count
    assert torch.equal(a.edge_state.degree[:n], b.edge_state.degree[:n])
    assert a.tick == b.tick


def same_result(r: ng.EmitResult, s: ng.EmitResult) -> None:
    d1, d2 = r.to_dict(), s.to_dict()
    d1.pop("processing_time_us")
    d2.pop("processing_time_us")
    assert d1 == d2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 250),
    spread=st.sampled_from([0.05, 0.2, 0.6]),
    profile=st.sampled_from(["default", "explorer", "creative"]),
    goals=st.booleans(),
)
def test_emit_equals_batch_of_one(seed, n, spread, profile, goals):
    rng = np.random.default_rng(seed)
    cdna = ng.CDNA.profile(profile).replace(max_degree=int(rng.integers(2, 10)))
    a, b = ng.Engine(cdna=cdna), ng.Engine(cdna=cdna)
    centers = rng.uniform(-0.6, 0.6, (3, 8))
    x = centers[rng.integers(0, 3, n)] + spread * rng.standard_normal((n, 8))
    pri = rng.integers(0, 256, n)
    kinds = rng.choice(["concept", "goal", "actuator"] if goals else ["concept"], n)
    for v, p, kd in zip(x, pri, kinds):
        r = a.emit(CHAT, v, priority=int(p), kind=str(kd))
        s = b.emit_batch(CHAT, v[None, :], priorities=[int(p)], kinds=[str(kd)])[0]
        same_result(r, s)
    assert_same_state(a, b)


def test_fast_path_through_index_rebuilds():
    rng = np.random.default_rng(3)
    a, b = ng.Engine(), ng.Engine()
    base = rng.uniform(-0.9, 0.9, (5000, 8)).astype(np.float32)
    a.add_tokens(base)
    b.add_tokens(base)
    x = base[rng.integers(0, 5000, 3000)] + 0.03 * rng.standard_normal((3000, 8))
    for v in x:
        same_result(a.emit(CHAT, v), b.emit_batch(CHAT, v[None, :])[0])
    assert a.index.rebuilds >= 2
    assert_same_state(a, b)


@pytest.mark.gpu
def test_cuda_engine_matches_cpu_engine():
    rng = np.random.default_rng(4)
    cpu, gpu = ng.Engine(device="cpu"), ng.Engine(device="cuda")
    x = rng.uniform(-0.4, 0.4, (2000, 8)).astype(np.float32)
    for part in np.split(x, 4):
        bc, bg = cpu.emit_batch(CHAT, part), gpu.emit_batch(CHAT, part)
        assert torch.equal(bc.token_ids, bg.token_ids) and torch.equal(bc.is_novel, bg.is_novel)
        assert torch.equal(bc.neighbor_ids, bg.neighbor_ids)
        torch.testing.assert_close(bc.neighbor_distances, bg.neighbor_distances, rtol=1e-5, atol=1e-6)
    for v in x[:200]:
        rc, rg = cpu.emit(CHAT, v), gpu.emit(CHAT, v)
        assert (rc.token_id, rc.is_novel) == (rg.token_id, rg.is_novel)
        assert [n["token_id"] for n in rc.neighbors] == [n["token_id"] for n in rg.neighbors]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), strict=st.booleans())
def test_scaled_metric_and_wide_box(seed, strict):
    """A weighted metric and a box far from the unit one: the index buffer's pre-filter (squared norms)
    and the single row's clamping agree with the batch, through index rebuilds."""
    rng = np.random.default_rng(seed)
    lo, hi = rng.uniform(-40.0, -20.0, 8), rng.uniform(20.0, 40.0, 8)
    cdna = ng.CDNA(
        axis_scale=tuple(rng.uniform(0.2, 5.0, 8)),
        axis_min=tuple(lo),
        axis_max=tuple(hi),
        neighbor_radius=3.0,
        novelty_threshold=1.5,
        strict=strict,
        max_degree=int(rng.integers(2, 12)),
    )
    a, b = ng.Engine(cdna=cdna), ng.Engine(cdna=cdna)
    base = rng.uniform(lo, hi, (200, 8)).astype(np.float32)
    a.add_tokens(base)
    b.add_tokens(base)
    x = base[rng.integers(0, 200, 250)] + rng.normal(0.0, 1.5, (250, 8))
    x[::17] *= 2.0  # some outside the box: clamped, or refused by a strict CDNA
    for v in x:
        try:
            s = b.emit_batch(CHAT, v[None, :])[0]
        except ng.InvalidSignal:
            with pytest.raises(ng.InvalidSignal):
                a.emit(CHAT, v)
            continue
        same_result(a.emit(CHAT, v), s)
    assert a.index.rebuilds >= 2  # the first build, and at least one with a full buffer
    assert_same_state(a, b)


@pytest.mark.parametrize(
    ("bad", "dtype"),
    [
        pytest.param(np.nan, np.float32, id="nan-f32"),
        pytest.param(np.nan, np.float64, id="nan-f64"),
        pytest.param(np.inf, np.float32, id="inf-f32"),
        pytest.param(-np.inf, np.float64, id="-inf-f64"),
        pytest.param(1e39, np.float64, id="beyond-float32"),
    ],
)
@pytest.mark.parametrize("axis", [0, 3, 7])
def test_single_vector_checks_match_the_batch(bad, dtype, axis):
    """The single signal's input checks (a fast path for in-box vectors) refuse what the batch refuses."""
    v = np.full(8, 0.25, dtype)
    v[axis] = bad
    a, b = ng.Engine(), ng.Engine()
    with pytest.raises(ng.InvalidSignal) as one:
        a.emit(CHAT, v)
    with pytest.raises(ng.InvalidSignal) as batch:
        b.emit_batch(CHAT, v[None, :])
    assert one.value.field == "vector" and batch.value.field == "vectors"
    assert a.token_state.count == 0 and a.guardian.rejected == 1


@pytest.mark.parametrize("strict", [False, True], ids=["clamp", "strict"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1.0, id="on-the-edge"),
        pytest.param(np.nextafter(1.0, 2.0), id="just-outside-float64"),
        pytest.param(1.5, id="outside"),
        pytest.param(-1.0000001, id="just-outside-below"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_vector_clamping_matches_the_batch(value, strict, dtype):
    """At and beyond the box's faces the single signal is clamped (or refused) as a batch row is."""
    cdna = ng.CDNA(strict=strict)
    v = np.full(8, 0.5, dtype)
    v[2] = value
    a, b = ng.Engine(cdna=cdna), ng.Engine(cdna=cdna)
    try:
        b.emit_batch(CHAT, v[None, :])
    except ng.InvalidSignal:
        with pytest.raises(ng.InvalidSignal):
            a.emit(CHAT, v)
    else:
        a.emit(CHAT, v)
    assert (a.guardian.clamped, a.guardian.rejected) == (b.guardian.clamped, b.guardian.rejected)
    assert_same_state(a, b)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 40),
    width=st.integers(1, 9),
    decay=st.sampled_from([0.0, 0.3, 0.6]),
    depth=st.integers(0, 4),
    threshold=st.sampled_from([0.05, 0.25, 0.5]),
)
def test_spread_one_equals_row_of_spread_numpy(seed, n, width, decay, depth, threshold):
    """The single signal's spread (token by token over Python lists) is row 0 of the batch's numpy
    spread, nodes in order of first arrival and energies bit for bit, on graphs with holes in the rows."""
    from neurograph.emit.activation import spread_numpy, spread_one

    rng = np.random.default_rng(seed)
    pairs = {(int(i), int(j)) for i, j in rng.integers(0, n, (3 * n, 2)) if i < j}
    adj = np.full((n, width), -1, np.int32)
    nbr = np.full((n, width), -1, np.int32)
    weight = rng.uniform(0.05, 1.0, len(pairs) + 1).astype(np.float32)
    for e, (i, j) in enumerate(sorted(pairs)):
        free_i, free_j = np.nonzero(adj[i] < 0)[0], np.nonzero(adj[j] < 0)[0]
        if free_i.size and free_j.size:  # any free cell: rows need not be packed
            ci, cj = rng.choice(free_i), rng.choice(free_j)
            adj[i, ci], nbr[i, ci], adj[j, cj], nbr[j, cj] = e, j, e, i
    for start in range(n):
        nodes, energy = spread_one(start, adj, nbr, weight, decay, depth, threshold)
        rows, ref_nodes, ref_energy = spread_numpy(
            np.array([start]), adj, nbr, weight, decay, depth, threshold
        )
        assert nodes == ref_nodes.tolist() and energy == ref_energy.tolist()
        assert (rows == 0).all()
