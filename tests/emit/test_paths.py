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
