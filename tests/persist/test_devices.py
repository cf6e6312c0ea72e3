"""Stores are device-independent: written on one device, opened on another (CUDA cases marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurograph as ng
from neurograph.persist import read_snapshot

from .workload import CHAT, assert_same_state, run_workload


def far_tail(eng: ng.Engine) -> None:
    """Signals far from each other and exact repeats: no near tie that float32 and float64 might decide
    differently, so a replay on another device gives the same ids."""
    g = np.zeros((6, 8), np.float32)
    g[:, 7] = np.linspace(-0.95, 0.95, 6)
    eng.emit_batch(CHAT, g)
    eng.emit(CHAT, g[2])
    eng.emit(CHAT, g[4])


def test_store_reopens_on_its_device(device, tmp_path):
    mem = ng.Engine(device=device, seed=1)
    eng = ng.Engine(device=device, seed=1, path=tmp_path / "s")
    for e in (mem, eng):
        run_workload(e, seed=3, steps=25)
    eng.save()
    for e in (mem, eng):
        far_tail(e)
    eng.store.close()
    assert_same_state(mem, ng.Engine.open(tmp_path / "s", device=device))


def test_snapshot_tensors_are_on_the_cpu(device, tmp_path):
    eng = ng.Engine(device=device, path=tmp_path / "s")
    run_workload(eng, seed=0, steps=10)
    tensors, meta = read_snapshot(eng.save())
    assert all(t.device.type == "cpu" for t in tensors.values())
    assert meta["device"] == str(eng.device)


@pytest.mark.gpu
@pytest.mark.parametrize(("src", "dst"), [("cpu", "cuda"), ("cuda", "cpu")])
def test_store_moves_between_cpu_and_cuda(tmp_path, src, dst):
    eng = ng.Engine(device=src, seed=2, path=tmp_path / "s")
    run_workload(eng, seed=5, steps=25)
    eng.save()
    far_tail(eng)  # replayed on the other device
    tokens, edges = eng.tokens(), eng.edges()
    eng.close()
    back = ng.Engine.open(tmp_path / "s", device=dst)
    assert back.device.type == dst
    pd.testing.assert_frame_equal(back.tokens(), tokens, check_exact=False, atol=1e-5, rtol=1e-5)
    pd.testing.assert_frame_equal(back.edges(), edges, check_exact=False, atol=1e-5, rtol=1e-5)
    r = back.emit(CHAT, [0.0] * 7 + [0.95])  # and it goes on there
    assert not r.is_novel
