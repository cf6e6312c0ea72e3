"""NeighborIndex: the cKDTree + buffer backend against the eager brute-force reference."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import neurograph as ng
from neurograph.neighbors import NeighborIndex, knn_arrays, sort_rows
from neurograph.state import TokenState


def brute(points: np.ndarray, valid: np.ndarray, q: np.ndarray, k: int, radius: float, scale, exclude=None):
    """The plainest oracle: every distance, then a Python sort by (distance, slot)."""
    out_i = np.full((len(q), k), -1)
    out_d = np.full((len(q), k), np.inf)
    for r, v in enumerate(q):
        d = np.sqrt((((points - v) ** 2) * np.asarray(scale)).sum(1))
        cand = sorted(
            (dd, j)
            for j, dd in enumerate(d)
            if valid[j] and dd <= radius and (exclude is None or j != exclude[r])
        )[:k]
        for c, (dd, j) in enumerate(cand):
            out_i[r, c], out_d[r, c] = j, dd
    return out_i, out_d


def make_tokens(rng, n, clustered=True):
    t = TokenState(capacity=64)
    if clustered:
        centers = rng.uniform(-0.8, 0.8, (12, 8))
        pos = centers[rng.integers(0, 12, n)] + 0.05 * rng.standard_normal((n, 8))
    else:
        pos = rng.uniform(-1, 1, (n, 8))
    t.append(n, tick=0, pos=pos.astype(np.float32))
    return t


def check(index: NeighborIndex, t: TokenState, q, k, radius, exclude=None):
    n = t.count
    valid = t.np("alive")[:n] & (t.np("level")[:n] == 0)
    want_i, want_d = brute(t.np("pos")[:n].astype(np.float64), valid, q, k, radius, index.scale, exclude)
    got_i, got_d = index.knn(q, k, radius, exclude)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clustered", [True, False], ids=["clustered", "uniform"])
@pytest.mark.parametrize("backend", ["tree", "brute"])
def test_index_matches_brute_force_through_inserts_moves_and_deaths(backend, clustered):
    rng = np.random.default_rng(1)
    t = make_tokens(rng, 3000, clustered)
    scale = (1.0, 2.0, 1.0, 1.0, 0.5, 1.0, 1.0, 3.0)
    index = NeighborIndex(t, scale, backend=backend)
    q = rng.uniform(-0.8, 0.8, (150, 8)).astype(np.float32)
    check(index, t, q, 16, 0.6)
    # inserts land in the buffer
    new = t.append(500, tick=1, pos=rng.uniform(-0.8, 0.8, (500, 8)).astype(np.float32))
    index.add(new)
    check(index, t, q, 16, 0.6)
    check(index, t, q[:3], 16, 0.6)  # small queries brute-force the buffer
    # moves: tokens leave the tree for the buffer
    moved = rng.choice(t.count, 400, replace=False)
    t.np("pos")[moved] += 0.05 * rng.standard_normal((400, 8)).astype(np.float32)
    index.moved(moved)
    check(index, t, q, 16, 0.6)
    # deaths and a level change
    dead = rng.choice(t.count, 300, replace=False)
    t.kill(dead)
    index.remove(dead)
    t.np("level")[:10] = 1
    index.remove(np.arange(10))
    check(index, t, q, 24, math.inf)
    # everything moved (dynamics)
    t.np("pos")[: t.count] *= 0.9
    index.invalidate()
    check(index, t, q, 5, 0.3)


def test_exclude_and_ties():
    t = TokenState(capacity=8)
    pts = np.zeros((6, 8), np.float32)
    pts[3:, 0] = 0.1  # three duplicates at the origin, three at 0.1: ties broken by slot
    t.append(6, tick=0, pos=pts)
    for backend in ("tree", "brute"):
        index = NeighborIndex(t, (1.0,) * 8, backend=backend)
        slots, dist = index.knn(np.zeros((2, 8), np.float32), 4, 1.0, exclude=np.array([1, -1]))
        assert slots.tolist() == [[0, 2, 3, 4], [0, 1, 2, 3]], backend
        assert dist[0].tolist() == pytest.approx([0, 0, 0.1, 0.1])


def test_many_dirty_tokens_force_a_larger_tree_query():
    rng = np.random.default_rng(5)
    t = make_tokens(rng, 4000)
    index = NeighborIndex(t, (1.0,) * 8, backend="tree", rebuild_fraction=0.9)
    q = t.np("pos")[:200].copy()
    check(index, t, q, 16, 0.5)
    moved = np.arange(0, 4000, 2)  # half of the tree is dirty
    t.np("pos")[moved] += 0.01
    index.moved(moved)
    assert index.rebuilds == 1
    check(index, t, q, 16, 0.5)


def test_knn_arrays_brute_and_tree_paths_agree():
    rng = np.random.default_rng(2)
    pts = rng.uniform(-1, 1, (2000, 8))
    q = rng.uniform(-1, 1, (40, 8))
    small_i, small_d = knn_arrays(q, pts, 7, 0.9)  # 40 x 2000: brute force
    big_i, big_d = knn_arrays(np.repeat(q, 10, 0), pts, 7, 0.9)  # 400 x 2000: a tree
    np.testing.assert_array_equal(small_i, big_i[::10])
    np.testing.assert_allclose(small_d, big_d[::10])
    self_i, _ = knn_arrays(pts[:50], pts[:50], 3, math.inf, exclude_self=True)
    assert not (self_i == np.arange(50)[:, None]).any()


def test_sort_rows_orders_by_distance_then_index():
    idx = np.array([[5, 2, -1, 7], [1, 0, 3, 2]])
    dist = np.array([[0.2, 0.2, 0.0, 0.1], [1.0, 1.0, 1.0, 0.5]])
    i, d = sort_rows(idx, dist)
    assert i.tolist() == [[7, 2, 5, -1], [2, 0, 1, 3]]
    assert d[0, -1] == np.inf


def test_backend_argument_is_checked():
    t = TokenState(capacity=4)
    with pytest.raises(ValueError, match="backend"):
        NeighborIndex(t, (1.0,) * 8, backend="faiss")


@pytest.mark.gpu
def test_cuda_backends_match_the_cpu_tree():
    rng = np.random.default_rng(3)
    cpu = make_tokens(rng, 5000)
    gpu = TokenState(capacity=64, device="cuda")
    gpu.append(cpu.count, tick=0, pos=cpu.np("pos")[: cpu.count])
    q = rng.uniform(-0.8, 0.8, (256, 8)).astype(np.float32)
    want_i, want_d = NeighborIndex(cpu, (1.0,) * 8, backend="tree").knn(q, 16, 0.5)
    for backend in ("brute", "triton"):
        got_i, got_d = NeighborIndex(gpu, (1.0,) * 8, backend=backend).knn(torch.from_numpy(q), 16, 0.5)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-6)


# --- ties are broken by id on every backend (issue 10 item 2) --------------------------------------------
def _duplicates(n: int = 3000, spots: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on ``spots`` duplicate positions (slot i sits on spot i % spots), and queries."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(-0.5, 0.5, (spots, 8)).astype(np.float32)
    queries = (spot + rng.normal(0, 0.01, (spots, 8))).astype(np.float32)
    return spot[np.arange(n) % spots], queries


def _brute(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((queries[:, None, :].astype(np.float64) - points[None].astype(np.float64)) ** 2).sum(-1))
    return np.stack([np.lexsort((np.arange(len(points)), row))[:k] for row in d])  # by (distance, id)


@pytest.mark.parametrize("k", [1, 4, 16])
def test_ties_at_the_cut_are_broken_by_id_on_every_cpu_path(k: int) -> None:
    points, queries = _duplicates()
    want = _brute(points, queries, k)
    for backend in ("tree", "brute"):
        eng = ng.Engine(cdna=ng.CDNA(neighbor_radius=2.0, novelty_threshold=0.01), index_backend=backend)
        ids = eng.add_tokens(points)
        assert (ids == np.arange(len(points))).all()
        slots, _ = eng.index.knn(queries, k, 2.0)
        np.testing.assert_array_equal(slots, want, err_msg=backend)
        for q, w in zip(queries, want):
            np.testing.assert_array_equal(eng.index.knn_one(q, k, 2.0)[0], w, err_msg=backend)
    # the buffer of recent inserts, and the tree with a buffer beside it
    eng = ng.Engine(cdna=ng.CDNA(neighbor_radius=2.0, novelty_threshold=0.01))
    eng.add_tokens(points[:2000])
    eng.index.knn(queries, k, 2.0)  # builds the tree over the first 2000
    eng.add_tokens(points[2000:])  # these go to the buffer
    slots, _ = eng.index.knn(queries, k, 2.0)
    np.testing.assert_array_equal(slots, want)
    for q, w in zip(queries, want):
        np.testing.assert_array_equal(eng.index.knn_one(q, k, 2.0)[0], w)
    # the host kNN of the hierarchy's graph (tree branch and brute branch of knn_arrays)
    for n in (3000, 300):
        idx, _ = knn_arrays(queries.astype(np.float64), points[:n].astype(np.float64), k, np.inf)
        np.testing.assert_array_equal(idx, _brute(points[:n], queries, k))


def test_a_duplicate_heavy_engine_resonates_the_lowest_id_on_tree_and_brute() -> None:
    points, queries = _duplicates(seed=1)
    got = []
    for backend in ("tree", "brute"):
        eng = ng.Engine(cdna=ng.CDNA(neighbor_radius=2.0, novelty_threshold=0.05), index_backend=backend)
        eng.add_tokens(points)
        got.append([eng.emit("signal.input.external.text.chat", q).token_id for q in queries])
    assert got[0] == got[1] == [0, 1, 2]


@pytest.mark.slow
def test_the_triton_kernel_breaks_ties_by_id_under_the_interpreter() -> None:
    pytest.importorskip("triton")
    points, queries = _duplicates(n=300)
    want = _brute(points, queries, 8)
    code = (
        "import sys, numpy as np, torch\n"
        "from neurograph.kernels import knn_triton\n"
        "p = torch.from_numpy(np.load(sys.argv[1])); q = torch.from_numpy(np.load(sys.argv[2]))\n"
        "d, i = knn_triton(q, p, 8, float('inf'), torch.ones(8))\n"
        "print(i.numpy().tolist())\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/p.npy", points)
        np.save(f"{tmp}/q.npy", queries)
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        out = subprocess.run(
            [sys.executable, "-c", code, f"{tmp}/p.npy", f"{tmp}/q.npy"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=True,
        ).stdout
    np.testing.assert_array_equal(np.array(ast.literal_eval(out)), want)
