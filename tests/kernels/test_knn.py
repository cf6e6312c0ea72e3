"""Exact kNN: ``knn_reference`` against a brute-force oracle, ``knn_triton`` against ``knn_reference``.

The Triton kernel runs on the CPU through the Triton interpreter. ``TRITON_INTERPRET=1`` must be set
before triton is imported, so all interpreter cases run in one subprocess (inputs and outputs travel
through ``torch.save`` files) and the rest of the session is unaffected.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from neurograph.kernels import knn_reference, knn_triton, triton_available

REPO = Path(__file__).resolve().parents[2]
RADIUS = 0.75  # a finite radius that leaves some rows of uniform [0, 1)^8 data with fewer than k hits

Case = dict[str, object]


# ----------------------------------------------------------------------------------------------------
# Inputs and the brute-force oracle


def make_case(
    n_queries: int,
    n_points: int,
    k: int,
    *,
    radius: float = math.inf,
    seed: int = 0,
    masks: str = "none",
    points: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> Case:
    """Random inputs; ``masks`` is ``none``, ``valid``, ``exclude`` or ``both``.

    With ``exclude``, the first queries are points themselves and exclude their own index (a kNN graph),
    the other rows exclude a random index or nothing (``-1``).
    """
    g = torch.Generator().manual_seed(seed)
    if points is None:
        points = torch.rand(n_points, 8, generator=g)  # (N, 8)
    n_points = points.shape[0]
    queries = torch.rand(n_queries, 8, generator=g)  # (Q, 8)
    if scale is None:
        scale = 0.5 + torch.rand(8, generator=g)  # (8,)
    valid = exclude = None
    if masks in ("valid", "both"):
        valid = torch.rand(n_points, generator=g) < 0.7  # (N,)
    if masks in ("exclude", "both"):
        n_self = min(n_queries, n_points) // 2
        queries[:n_self] = points[:n_self]
        exclude = torch.randint(-1, max(n_points, 1), (n_queries,), generator=g)  # (Q,)
        exclude[:n_self] = torch.arange(n_self)
    return dict(queries=queries, points=points, k=k, radius=radius, scale=scale, valid=valid, exclude=exclude)


def oracle(
    queries: torch.Tensor,
    points: torch.Tensor,
    k: int,
    radius: float,
    scale: torch.Tensor,
    valid: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full fp32 distance matrix (numpy, axis by axis, correctly rounded sqrt) and a Python sort by (d, j)."""
    q, p, s = queries.numpy(), points.numpy(), scale.numpy()
    d2 = np.zeros((q.shape[0], p.shape[0]), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # the non-finite-points case
        for i in range(8):
            diff = q[:, i, None] - p[None, :, i]  # (Q, N)
            term = diff * diff * s[i]
            d2 = term if i == 0 else d2 + term
        d = np.sqrt(d2)
    r = np.float32(radius)
    dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
    idx = np.full((q.shape[0], k), -1, dtype=np.int64)
    for a in range(q.shape[0]):
        hits = sorted(
            (float(d[a, j]), j)
            for j in range(p.shape[0])
            if (valid is None or bool(valid[j]))
            and (exclude is None or j != int(exclude[a]))
            and np.isfinite(d[a, j])
            and d[a, j] <= r
        )[:k]
        for c, (dj, j) in enumerate(hits):
            dist[a, c], idx[a, c] = dj, j
    return dist, idx


def assert_same(
    got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]
) -> None:
    """Same indices exactly; distances within 1e-5 relative (atol 1e-6); same shapes and dtypes."""
    got_d, got_i = got
    want_d, want_i = (torch.as_tensor(x) for x in want)
    assert got_d.dtype == torch.float32 and got_i.dtype == torch.int64
    assert got_d.shape == want_d.shape and got_i.shape == want_i.shape
    torch.testing.assert_close(got_i.cpu(), want_i.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(got_d.cpu(), want_d.cpu(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# knn_reference against the oracle

REFERENCE_RANDOM = [
    pytest.param(k, radius, masks, id=f"k{k}-{'inf' if radius == math.inf else 'radius'}-{masks}")
    for k in (1, 5, 16)
    for radius in (math.inf, RADIUS)
    for masks in ("none", "valid", "exclude", "both")
]


@pytest.mark.parametrize(("k", "radius", "masks"), REFERENCE_RANDOM)
def test_reference_matches_oracle_on_random_data(k: int, radius: float, masks: str) -> None:
    case = make_case(33, 150, k, radius=radius, masks=masks, seed=k)
    assert_same(knn_reference(**case), oracle(**case))


def _duplicated_points() -> Case:
    g = torch.Generator().manual_seed(1)
    base = torch.rand(12, 8, generator=g)
    points = base[torch.randint(0, 12, (120,), generator=g)]  # (120, 8): every point has ~10 twins
    return make_case(20, 0, 16, points=points, masks="both", seed=1)


def _grid_points() -> Case:
    g = torch.Generator().manual_seed(2)
    points = torch.randint(0, 3, (150, 8), generator=g).float()  # (150, 8): many equal distances
    case = make_case(25, 0, 24, points=points, masks="exclude", seed=2, scale=torch.ones(8))
    case["queries"] = torch.randint(0, 3, (25, 8), generator=g).float()
    return case


def _non_finite_points() -> Case:
    case = make_case(10, 60, 8, seed=3)
    case["points"][3, 2] = math.nan
    case["points"][7, 5] = math.inf
    case["points"][11, 0] = 1e30  # the squared distance overflows to inf
    return case


REFERENCE_SPECIAL: dict[str, Callable[[], Case]] = {
    "duplicates-k16": _duplicated_points,
    "grid-ties-k24": _grid_points,
    "non-finite-points": _non_finite_points,
    "n0": lambda: make_case(7, 0, 5),
    "q0": lambda: make_case(0, 40, 5),
    "n-lt-k": lambda: make_case(9, 6, 16, masks="valid"),
    "all-invalid": lambda: {**make_case(5, 30, 4), "valid": torch.zeros(30, dtype=torch.bool)},
    "zero-scale-axes": lambda: make_case(15, 80, 5, scale=torch.tensor([1.0, 0, 2, 0, 1, 1, 0, 0.5])),
}


@pytest.mark.parametrize("name", list(REFERENCE_SPECIAL))
def test_reference_matches_oracle_on_special_data(name: str) -> None:
    case = REFERENCE_SPECIAL[name]()
    assert_same(knn_reference(**case), oracle(**case))


def test_reference_breaks_exact_ties_by_index() -> None:
    points = torch.zeros(6, 8)  # (6, 8)
    points[[1, 3], 0] = 1.0  # points 0, 2, 4, 5 sit on the query, 1 and 3 one unit away
    points[5, 0] = 2.0
    dist, idx = knn_reference(torch.zeros(1, 8), points, 5, math.inf, torch.ones(8))
    assert idx.tolist() == [[0, 2, 4, 1, 3]]
    assert dist.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]


def test_reference_pads_rows_with_few_hits() -> None:
    points = torch.tensor([[0.0] * 8, [3.0] + [0.0] * 7])  # (2, 8)
    dist, idx = knn_reference(torch.zeros(2, 8), points, 3, 1.0, torch.ones(8), exclude=torch.tensor([-1, 0]))
    assert idx.tolist() == [[0, -1, -1], [-1, -1, -1]]
    assert dist[0, 0] == 0.0 and torch.isinf(dist[0, 1:]).all() and torch.isinf(dist[1]).all()


def test_reference_chunks_agree() -> None:
    case = make_case(50, 120, 5, masks="both", radius=RADIUS, seed=4)
    assert_same(knn_reference(**case, chunk=7), knn_reference(**case))


def test_reference_distance_is_the_weighted_metric() -> None:
    case = make_case(20, 100, 5, seed=5)
    dist, idx = knn_reference(**case)
    q, p, s = (case[key].double() for key in ("queries", "points", "scale"))
    want = ((q[:, None, :] - p[idx]) ** 2 * s).sum(-1).sqrt()  # (Q, k) in float64
    torch.testing.assert_close(dist.double(), want, rtol=1e-6, atol=1e-7)


BAD_ARGUMENTS = {
    "queries-shape": dict(queries=torch.zeros(3, 7)),
    "queries-dtype": dict(queries=torch.zeros(3, 8, dtype=torch.float64)),
    "points-shape": dict(points=torch.zeros(4)),
    "k-zero": dict(k=0),
    "k-float": dict(k=2.0),
    "scale-shape": dict(scale=torch.ones(7)),
    "valid-dtype": dict(valid=torch.ones(4)),
    "valid-shape": dict(valid=torch.ones(5, dtype=torch.bool)),
    "exclude-dtype": dict(exclude=torch.zeros(3, dtype=torch.int32)),
}


@pytest.mark.parametrize("fn", [knn_reference, knn_triton], ids=["reference", "triton"])
@pytest.mark.parametrize("bad", list(BAD_ARGUMENTS))
def test_bad_arguments_are_named(fn: Callable, bad: str) -> None:
    args = dict(queries=torch.zeros(3, 8), points=torch.zeros(4, 8), k=2, radius=1.0, scale=torch.ones(8))
    args.update(BAD_ARGUMENTS[bad])
    field = bad.split("-")[0]
    with pytest.raises(ValueError, match=field):
        fn(**args)


def test_triton_refuses_k_above_64() -> None:
    with pytest.raises(ValueError, match="k must be <= 64"):
        knn_triton(torch.zeros(3, 8), torch.zeros(4, 8), 65, 1.0, torch.ones(8))


@pytest.mark.skipif(
    torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1", reason="needs a plain CPU session"
)
def test_triton_refuses_cpu_tensors_without_interpreter() -> None:
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        knn_triton(torch.zeros(3, 8), torch.zeros(4, 8), 2, 1.0, torch.ones(8))


# ----------------------------------------------------------------------------------------------------
# knn_triton against knn_reference, through the Triton interpreter (one subprocess for all cases)


def _sorted_by_distance(descending: bool) -> Case:
    """One query, points sorted near-first (later tiles are skipped) or far-first (every tile merges)."""
    case = make_case(3, 300, 8, seed=6)
    d = ((case["points"] - case["queries"][0]) ** 2 * case["scale"]).sum(-1)  # (N,)
    case["points"] = case["points"][d.argsort(descending=descending)]
    return case


TRITON_CASES: dict[str, Callable[[], Case]] = {
    "k1-inf": lambda: make_case(37, 300, 1, seed=10),
    "k5-radius-valid": lambda: make_case(64, 300, 5, radius=RADIUS, masks="valid", seed=11),
    "k16-inf-exclude": lambda: make_case(64, 300, 16, masks="exclude", seed=12),
    "k24-radius-both": lambda: make_case(40, 257, 24, radius=RADIUS, masks="both", seed=13),
    "k64-n-lt-k": lambda: make_case(20, 50, 64, masks="both", seed=14),
    "k64-inf": lambda: make_case(9, 200, 64, seed=15),
    "duplicates-k16": _duplicated_points,
    "grid-ties-k24": _grid_points,
    "non-finite-points": _non_finite_points,
    "zero-scale-axes": REFERENCE_SPECIAL["zero-scale-axes"],
    "near-first-k8": lambda: _sorted_by_distance(descending=False),
    "far-first-k8": lambda: _sorted_by_distance(descending=True),
    "small-tiles-k5": lambda: {**make_case(50, 140, 5, masks="both", seed=16), "blocks": (16, 32, 4)},
    # Two queries a block, 16 points a tile: many tiles, most skipped, some only just merged.
    "tiny-tiles-k4": lambda: {**make_case(20, 300, 4, radius=0.55, seed=17), "blocks": (2, 16, 1)},
    "n0": REFERENCE_SPECIAL["n0"],
    "q0": REFERENCE_SPECIAL["q0"],
}

_INTERPRETER_SCRIPT = """
import sys, traceback
import torch
import neurograph.kernels
triton_imported_by_package = "triton" in sys.modules
from neurograph.kernels import knn_triton, triton_available
cases = torch.load(sys.argv[1])
results = {"_meta": {"lazy": not triton_imported_by_package, "available": triton_available()}}
for name, case in cases.items():
    try:
        blocks = case.pop("blocks", None)
        if blocks is None:
            results[name] = knn_triton(**case)
        else:
            from neurograph.kernels._knn_triton import launch
            block_q, block_n, num_warps = blocks
            results[name] = launch(**case, block_q=block_q, block_n=block_n, num_warps=num_warps)
    except Exception:
        results[name] = traceback.format_exc()
torch.save(results, sys.argv[2])
"""


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Case], dict[str, object]]:
    """Runs every case of ``TRITON_CASES`` through ``knn_triton`` under ``TRITON_INTERPRET=1``."""
    pytest.importorskip("triton")
    cases = {name: build() for name, build in TRITON_CASES.items()}
    tmp = tmp_path_factory.mktemp("knn_interpreter")
    torch.save(cases, tmp / "cases.pt")
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_SCRIPT, str(tmp / "cases.pt"), str(tmp / "out.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return cases, torch.load(tmp / "out.pt")


def test_interpreter_session_sees_triton_lazily(interpreted: tuple[dict, dict]) -> None:
    meta = interpreted[1]["_meta"]
    assert meta == {"lazy": True, "available": True}


@pytest.mark.parametrize("name", list(TRITON_CASES))
def test_triton_matches_reference_in_interpreter(interpreted: tuple[dict, dict], name: str) -> None:
    cases, results = interpreted
    got = results[name]
    assert not isinstance(got, str), got  # a traceback from the subprocess
    case = {key: value for key, value in cases[name].items() if key != "blocks"}
    assert_same(got, knn_reference(**case))


# ----------------------------------------------------------------------------------------------------
# knn_triton on a CUDA GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_triton_matches_reference_on_cuda() -> None:
    pytest.importorskip("triton")
    assert triton_available()
    case = make_case(512, 20_000, 16, masks="both", seed=20)
    case["radius"] = 0.6  # about half of the rows get fewer than 16 hits
    cuda = {key: value.cuda() if isinstance(value, torch.Tensor) else value for key, value in case.items()}
    assert_same(knn_triton(**cuda), knn_reference(**cuda))
    cuda["radius"] = math.inf
    assert_same(knn_triton(**cuda), knn_reference(**cuda))
