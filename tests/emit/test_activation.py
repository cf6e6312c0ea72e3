"""Spreading activation: a hand-checked graph, and the numpy and torch twins agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurograph.emit.activation import spread_numpy, spread_torch
from neurograph.state import EdgeState


def chain_graph():
    """0 -1.0- 1 -0.9- 2 -0.8- 3 -1.0- 4, plus 0 -0.3- 5 and a shortcut 0 -0.5- 2."""
    e = EdgeState(capacity=16, node_capacity=8, max_degree=4)
    src = np.array([0, 1, 2, 3, 0, 0])
    dst = np.array([1, 2, 3, 4, 5, 2])
    e.append(src, dst, tick=0, kind=0x50, weight=np.array([1.0, 0.9, 0.8, 1.0, 0.3, 0.5], np.float32))
    return e


def run_numpy(e, starts, decay=0.0, depth=3, threshold=0.5):
    r, n, en = spread_numpy(
        np.asarray(starts), e.np("adj"), e.np("nbr"), e.np("weight"), decay, depth, threshold
    )
    return {(int(a), int(b)): float(c) for a, b, c in zip(r, n, en)}


def test_hand_checked_chain():
    e = chain_graph()
    got = run_numpy(e, [0])
    # 1: 1.0; 2: max(1.0*0.9, 0.5) = 0.9; 3: 0.9*0.8 = 0.72 (third hop); 4 needs a fourth hop; 5: 0.3 < 0.5
    assert got == pytest.approx({(0, 1): 1.0, (0, 2): 0.9, (0, 3): 0.72})
    deeper = run_numpy(e, [0], depth=4)
    assert deeper[(0, 4)] == pytest.approx(0.72)
    # with decay 0.5: 1 gets 0.5; 2 (0.25) and 5 (0.15) stay below 0.3, and 1 cannot pass 0.3 on
    decayed = run_numpy(e, [0], decay=0.5, threshold=0.3)
    assert decayed == pytest.approx({(0, 1): 0.5})


def test_two_rows_are_independent_and_start_is_excluded():
    e = chain_graph()
    got = run_numpy(e, [0, 4], depth=1, threshold=0.1)
    assert got == pytest.approx({(0, 1): 1.0, (0, 5): 0.3, (0, 2): 0.5, (1, 3): 1.0})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_and_torch_agree_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n, m = 300, 900
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    key = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    a, b = key // n, key % n
    keep = a != b
    a, b = a[keep], b[keep]
    e = EdgeState(capacity=16, node_capacity=n, max_degree=64)
    e.append(a, b, tick=0, kind=0x50, weight=rng.uniform(0.3, 1.0, a.size).astype(np.float32))
    starts = rng.integers(0, n, 40)
    args = (0.2, 3, 0.3)
    r1, n1, e1 = spread_numpy(starts, e.np("adj"), e.np("nbr"), e.np("weight"), *args)
    r2, n2, e2 = spread_torch(torch.from_numpy(starts), e.adj, e.nbr, e.weight, *args)
    got = dict(zip(zip(r1.tolist(), n1.tolist()), e1.tolist()))
    want = dict(zip(zip(r2.tolist(), n2.tolist()), e2.tolist()))
    assert got.keys() == want.keys()
    for key in got:
        assert got[key] == pytest.approx(want[key])
