"""Token and edge stores: capacity doubling, stable ids, adjacency tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurograph.errors import CapacityError
from neurograph.state import EdgeState, TokenState, cumcount


def test_tokens_grow_by_doubling_and_keep_ids(device):
    t = TokenState(capacity=4, device=device)
    s1 = t.append(3, tick=0, pos=np.zeros((3, 8), np.float32))
    s2 = t.append(6, tick=1, pos=np.ones((6, 8), np.float32))
    assert t.capacity == 16 and t.count == 9 and t.n_alive == 9
    assert s1.tolist() == [0, 1, 2] and s2.tolist() == list(range(3, 9))
    assert t.ids[:9].tolist() == list(range(9))
    assert torch.equal(t.pos[3:9].cpu(), torch.ones(6, 8))
    t.kill(np.array([1, 4]))
    assert t.n_alive == 7 and t.slots_of([1, 4, 5, 99, -3]).tolist() == [-1, -1, 5, -1, -1]
    s3 = t.append(1, tick=2)
    assert t.ids[s3[0]].item() == 9  # ids are never reused


def test_state_dict_roundtrip(device):
    t = TokenState(capacity=4, device=device)
    t.append(5, tick=3, pos=np.arange(40, dtype=np.float32).reshape(5, 8), kind=np.full(5, 5))
    t.kill(np.array([2]))
    u = TokenState(capacity=2, device=device)
    u.load_state_dict(t.state_dict(), next_id=t.next_id)
    assert u.count == 5 and u.n_alive == 4 and u.next_id == 5
    assert u.slots_of([0, 2, 4]).tolist() == [0, -1, 4]
    assert torch.equal(u.pos[:5].cpu(), t.pos[:5].cpu())


def test_edges_adjacency_find_and_remove(device):
    e = EdgeState(capacity=2, node_capacity=4, max_degree=3, device=device)
    slots = e.append(np.array([0, 0, 1, 2]), np.array([1, 2, 2, 5]), tick=0, kind=0x50, weight=0.5)
    assert slots.tolist() == [0, 1, 2, 3] and e.capacity == 4
    assert e.adj.shape[0] >= 6  # grew to hold node 5
    assert e.degree[:6].tolist() == [2, 2, 3, 0, 0, 1]
    assert e.find(np.array([0, 1, 2, 5, 0]), np.array([1, 0, 1, 2, 5])).tolist() == [0, 0, 2, 3, -1]
    e.remove(np.array([0, 3]))
    assert e.n_alive == 2 and e.degree[:6].tolist() == [1, 1, 2, 0, 0, 0]
    assert e.find(np.array([0, 2]), np.array([1, 0])).tolist() == [-1, 1]
    # structural edges stay out of the adjacency tables
    e.append(np.array([3]), np.array([4]), tick=1, kind=0x60)
    assert e.degree[3].item() == 0 and e.find(np.array([3]), np.array([4])).tolist() == [-1]
    count = e.count
    with pytest.raises(CapacityError):
        e.append(np.array([2, 2]), np.array([3, 4]), tick=1, kind=0x50)
    assert e.count == count and e.n_alive == 3  # nothing written


def test_cumcount():
    assert cumcount(np.array([5, 3, 5, 5, 3])).tolist() == [0, 0, 1, 2, 1]
    assert cumcount(np.array([], dtype=np.int64)).tolist() == []
