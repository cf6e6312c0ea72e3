"""Guardian memory quotas on the real tensor footprint: refused before allocation, engine still usable."""

from __future__ import annotations

import numpy as np
import pytest

import neurograph as ng
from neurograph.errors import QuotaExceeded
from neurograph.state import planned_bytes

from .workload import CHAT, clustered

CAPACITY = 64


def grid(n: int) -> np.ndarray:
    """``[n, 8]`` points 0.25 apart on a plane: farther apart than the neighbour radius, each one novel."""
    g = np.linspace(-1.0, 1.0, 9)
    out = np.zeros((n, 8), np.float32)
    out[:, :2] = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)[:n]
    return out


def footprint(eng: ng.Engine) -> int:
    t, e = eng.token_state, eng.edge_state
    return sum(x.numel() * x.element_size() for _, x in t.tensors()) + sum(
        x.numel() * x.element_size() for x in (*(x for _, x in e.tensors()), e.adj, e.nbr, e.degree)
    )


def frozen(eng: ng.Engine) -> tuple:
    s = eng.stats()
    keep = ("tokens", "edges", "tick", "signals", "token_capacity", "edge_capacity", "memory_bytes")
    return eng.tokens().to_dict(), eng.edges().to_dict(), {k: s[k] for k in keep}


def test_planned_bytes_is_the_real_tensor_footprint(device):
    eng = ng.Engine(device=device, capacity=CAPACITY)
    rng = np.random.default_rng(0)
    for n in (0, 10, 200, 700):
        if n:
            eng.emit_batch(CHAT, clustered(rng, n))
        t, e = eng.token_state, eng.edge_state
        now, alloc = planned_bytes(t, e, 0, 0, eng.cdna.max_degree)
        assert now == footprint(eng) == eng.stats()["memory_bytes"] and alloc == 0
        grow = t.capacity - t.count + 1  # one token more than fits: the capacity doubles
        after, alloc = planned_bytes(t, e, grow, 0, eng.cdna.max_degree)
        eng.add_tokens(rng.uniform(-1, 1, (grow, 8)))
        assert after == footprint(eng) and alloc > 0


@pytest.mark.parametrize("path", [False, True], ids=["memory", "store"])
def test_a_growth_past_the_memory_quota_is_refused_before_allocation(device, path, tmp_path):
    store = tmp_path / "store" if path else None
    eng = ng.Engine(device=device, capacity=CAPACITY, path=store)
    eng.update_cdna(max_memory_bytes=footprint(eng) + 1024)  # room for anything but a doubling
    vectors = grid(CAPACITY + 1)
    eng.emit_batch(CHAT, vectors[: CAPACITY - 1])
    eng.emit(CHAT, vectors[CAPACITY - 1])  # the store is full, nothing grew
    events = []
    eng.subscribe("guardian.quota", events.append)
    before = frozen(eng)
    seq = eng.store.seq if path else None
    with pytest.raises(QuotaExceeded) as info:
        eng.emit(CHAT, vectors[CAPACITY])  # a new token needs the token capacity doubled
    assert info.value.quota == "max_memory_bytes" and info.value.requested > info.value.limit
    with pytest.raises(QuotaExceeded):
        eng.emit_batch(CHAT, vectors[CAPACITY:])
    with pytest.raises(QuotaExceeded):
        eng.add_tokens(vectors[:1])
    assert frozen(eng) == before  # nothing grew, nothing changed
    assert [e.data["quota"] for e in events] == ["max_memory_bytes"] * 3
    assert eng.stats()["quota_refusals"] == 3
    # still usable: familiar signals need no growth
    r = eng.emit(CHAT, vectors[5])
    assert not r.is_novel and r.token_id == 5
    assert not eng.emit_batch(CHAT, vectors[:10]).is_novel.any()
    if path:
        assert eng.store.seq == seq + 2  # refused calls were never logged, the accepted ones were
        eng.close()
        back = ng.Engine.open(store, device=device)
        assert back.stats()["signals"] == CAPACITY + 11
        assert back.cdna.max_memory_bytes == eng.cdna.max_memory_bytes
