"""The batch path stays on the device (DESIGN §3.8): its device code paths agree with the host ones, and
on CUDA a batch syncs with the host only at the points ``neurograph.emit.batch`` documents."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import neurograph as ng
import neurograph.emit.batch as batch_module
import neurograph.emit.novelty as novelty_module
from neurograph.emit import EmitState, ingest_batch
from neurograph.emit.activation import spread_numpy, spread_torch
from neurograph.emit.hebbian import positions, positions_by_scan
from neurograph.kinds import KIND_CODE
from neurograph.neighbors import _earlier_device
from neurograph.state import EdgeState

CHAT = "signal.input.external.text.chat"


def device_search(monkeypatch: pytest.MonkeyPatch, eng: ng.Engine) -> None:
    """Make a CPU engine search its batches as on CUDA (brute force over the batch, float32)."""

    def knn_earlier(queries, k, radius, points, ask=None):
        return _earlier_device(queries, eng.index._scale_t, k, radius, points, ask)

    monkeypatch.setattr(eng.index, "knn_earlier", knn_earlier)


def draw(rng: np.random.Generator, centers: np.ndarray, n: int, sigma: float) -> np.ndarray:
    return (centers[rng.integers(0, len(centers), n)] + sigma * rng.standard_normal((n, 8))).astype(
        np.float32
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_earlier_search_on_the_device_matches_the_host(seed):
    rng = np.random.default_rng(seed)
    eng = ng.Engine()
    x = torch.from_numpy(draw(rng, rng.uniform(-0.5, 0.5, (3, 8)), 400, 0.05))
    points = torch.from_numpy(rng.random(400) < 0.6)
    ask = torch.from_numpy(rng.random(400) < 0.8)
    for k, radius in [(1, 0.1), (8, 0.1), (16, 0.2)]:
        hi, hd = eng.index.knn_earlier(x, k, radius, points, ask)
        di, dd = _earlier_device(x, eng.index._scale_t, k, radius, points, ask)
        assert torch.equal(hi, di)
        torch.testing.assert_close(hd, dd, rtol=1e-6, atol=1e-7)
        rows = torch.arange(400)[:, None]
        assert bool(((hi < rows) | (hi < 0)).all()), "only earlier rows"


@pytest.mark.parametrize("sigma", [0.012, 0.05], ids=["clumps", "clusters"])
def test_device_code_paths_match_the_host_paths(monkeypatch, sigma):
    """Brute-force kNN and in-batch search (the CUDA code paths, run on CPU tensors) against the tree."""
    rng = np.random.default_rng(5)
    cdna = ng.CDNA.profile("default").replace(max_degree=6)
    host, dev = ng.Engine(cdna=cdna), ng.Engine(cdna=cdna, index_backend="brute")
    device_search(monkeypatch, dev)
    exact_rounds = []
    original = novelty_module._exact_round
    monkeypatch.setattr(novelty_module, "_exact_round", lambda *a: exact_rounds.append(1) or original(*a))
    centers = rng.uniform(-0.6, 0.6, (4, 8))
    for _ in range(4):
        x = draw(rng, centers, 300, sigma)
        kinds = rng.choice(["concept", "goal", "actuator"], 300).tolist()
        a, b = host.emit_batch(CHAT, x, kinds=kinds), dev.emit_batch(CHAT, x, kinds=kinds)
        assert torch.equal(a.token_ids, b.token_ids) and torch.equal(a.is_novel, b.is_novel)
        assert torch.equal(a.neighbor_ids, b.neighbor_ids)
        torch.testing.assert_close(a.neighbor_distances, b.neighbor_distances, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.energy_deltas, b.energy_deltas, rtol=1e-4, atol=1e-6)
        assert torch.equal(a.activation_spread, b.activation_spread)
        assert a.triggered_actions == b.triggered_actions
    if sigma < 0.02:
        assert exact_rounds, "dense clumps overflow the conflict lists: the exact rounds ran"
    for name in ("src", "dst", "evidence", "mutability"):
        assert torch.equal(getattr(host.edge_state, name), getattr(dev.edge_state, name)), name
    for name in ("weight", "confidence"):  # resonance from float32 distances: last bits differ
        torch.testing.assert_close(getattr(host.edge_state, name), getattr(dev.edge_state, name))


def test_batch_result_keeps_device_tensors_and_copies_once():
    eng = ng.Engine()
    b = eng.emit_batch(CHAT, np.random.default_rng(0).uniform(-0.5, 0.5, (20, 8)))
    assert b.device == eng.device
    assert set(b.device_tensors) >= {"token_ids", "is_novel", "neighbor_ids", "triggered_offsets"}
    assert b.host() is b.host()
    assert b.triggered_ids.shape[0] == int(b.triggered_offsets[-1])


def count_syncs(fn):
    """Run ``fn`` under CUDA's sync debug mode; returns ``(result, number of synchronizing operations)``."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    return out, len(syncs)


@pytest.mark.gpu
def test_cuda_batch_syncs_only_at_the_documented_points(monkeypatch):
    rng = np.random.default_rng(11)
    eng = ng.Engine(device="cuda")
    cdna = eng.cdna
    centers = rng.uniform(-0.6, 0.6, (8, 8))
    eng.add_tokens(draw(rng, centers, 3000, 0.03))
    eng.emit_batch(CHAT, draw(rng, centers, 500, 0.03))  # warm-up: kernels built, edges learned
    x = draw(rng, centers, 1000, 0.03)
    x[::50] = rng.uniform(-0.9, 0.9, (20, 8))  # a few novel rows far from everything
    pri = np.full(len(x), 128, np.int64)
    kind = np.full(len(x), KIND_CODE["concept"], np.int16)

    xt = torch.from_numpy(x).cuda()
    _, knn_syncs = count_syncs(lambda: eng.index.knn_tensors(xt, cdna.max_neighbors, cdna.neighbor_radius))
    seen = []
    resolve = batch_module.resolve_batch
    monkeypatch.setattr(batch_module, "resolve_batch", lambda *a: seen.append(resolve(*a)) or seen[-1])
    stores = EmitState(eng.token_state, eng.edge_state, eng.index, eng.guardian)
    result, syncs = count_syncs(lambda: ingest_batch(stores, cdna, x, pri, kind, eng.tick))

    assert seen[0].syncs == 1, "a usual batch resolves novelty with one sync"
    documented = knn_syncs + seen[0].syncs + 1 + cdna.activation_depth  # novelty, growth, one per hop
    assert syncs <= documented, f"{syncs} host syncs, documented at most {documented}"
    assert result.device.type == "cuda" and result.token_ids.device.type == "cpu"  # the API edge
    assert int(result.is_novel.sum()) >= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spread_torch_returns_the_arrival_order_of_spread_numpy(seed):
    """Same reached set, energies and order (triggered actions are listed in order of arrival)."""
    rng = np.random.default_rng(seed)
    n, m = 200, 700
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    key = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    a, b = key // n, key % n
    keep = a != b
    e = EdgeState(capacity=16, node_capacity=n, max_degree=64)
    e.append(
        a[keep], b[keep], tick=0, kind=0x50, weight=rng.uniform(0.3, 1.0, int(keep.sum())).astype(np.float32)
    )
    starts = rng.integers(0, n, 30)
    args = (0.1, 4, 0.2)
    r1, n1, e1 = spread_numpy(starts, e.np("adj"), e.np("nbr"), e.np("weight"), *args)
    r2, n2, e2 = spread_torch(torch.from_numpy(starts), e.adj, e.nbr, e.weight, *args)
    assert r1.tolist() == r2.tolist() and n1.tolist() == n2.tolist()
    np.testing.assert_array_equal(e1, e2.numpy())


def test_positions_by_scan_is_nonzero():
    """The sync-free compaction used on CUDA gives ``nonzero`` (the CPU's shortcut)."""
    keep = torch.from_numpy(np.random.default_rng(0).random(1000) < 0.3)
    want = torch.nonzero(keep).view(-1)
    assert torch.equal(positions_by_scan(keep, int(keep.sum())), want)
    assert torch.equal(positions(keep, int(keep.sum())), want)
    assert positions_by_scan(torch.zeros(5, dtype=torch.bool), 0).shape == (0,)
