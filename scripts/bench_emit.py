#!/usr/bin/env python3
"""emit_batch throughput against an exact kNN query of the same batch, in the same process.

Workload (the measuring stick of ../shared/bench/cpu_knn_baselines.py): N resident tokens in [0, 1)^8,
*uniform*, *dense* (uniform in a smaller cube, sized so that a signal has about 8 residents within the
radius: the regime of many Hebbian updates) or *clustered* (256 Gaussian blobs, sigma 0.02), seeded
with ``Engine.add_tokens``; then
batches of B = 10,000 signals from the same distribution go through ``Engine.emit_batch`` (novelty,
neighbours, insertion, Hebbian edges, reinforcement, spreading activation, energy: the whole semantics).

Baselines, timed in the same run on the same data:
  CPU  ``scipy.spatial.cKDTree(X).query(Q, k=16, distance_upper_bound=r, workers=-1)`` (the tree built
       beforehand, as the engine's index is), the fastest exact 8-D kNN measured on this platform, asked
       the engine's question: the 16 nearest *within the neighbour radius* ``r`` of the default CDNA.
       The unlimited query (``r = inf``) is timed beside it (``ratio_unbounded``);
  GPU  chunked ``torch.cdist`` + ``topk`` over N = 1e6 (when CUDA is present).

``ratio = baseline seconds / emit_batch seconds``: >= 1 means the whole emit_batch is at least as fast as
the kNN query alone. Each timed batch runs on a fresh engine holding the same residents (median of
``--repeats``); ``steady`` also reports consecutive batches on one engine (edges accumulate). Single
``emit`` calls are timed too.

Usage:
  python scripts/bench_emit.py                    # N = 1e4, 1e5 on CPU (+ 1e6 on a GPU when present)
  python scripts/bench_emit.py --n 10000 --repeats 2 --json /tmp/out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from benchmeta import machine
from scipy.spatial import cKDTree

import neurograph as ng

CHAT = "signal.input.external.bench.vector"


def data(dist: str, n: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residents ``[n, 8]`` and two query batches ``[q, 8]`` from one distribution."""
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return tuple(rng.random((m, 8), dtype=np.float32) for m in (n, q, q))  # type: ignore[return-value]
    if dist == "dense":  # uniform in a smaller cube: about 8 residents within the radius at N = 1e5
        # 4.06 = volume of the unit 8-ball; 0.94 makes up for the cube's faces (measured: 8 neighbours)
        side = 0.94 * 0.2 * (max(n, 1) * 4.06 / 8) ** (1 / 8)
        return tuple((side * rng.random((m, 8))).astype(np.float32) for m in (n, q, q))  # type: ignore[return-value]
    centers = rng.random((256, 8), dtype=np.float32)

    def draw(m: int) -> np.ndarray:
        return (centers[rng.integers(0, 256, m)] + 0.02 * rng.standard_normal((m, 8))).astype(np.float32)

    return draw(n), draw(q), draw(q)


def median_time(fn, repeats: int, setup=None) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        state = setup() if setup else None
        t0 = time.perf_counter()
        out = fn(state) if setup else fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fresh_engine(x: np.ndarray, device: str, warm: np.ndarray) -> ng.Engine:
    eng = ng.Engine(device=device, capacity=max(1024, 2 * len(x)))
    eng.add_tokens(x)
    eng.emit_batch(CHAT, warm[:64])  # builds the index (the baseline's tree is built beforehand too)
    return eng


def bench_cpu(dist: str, n: int, batch: int, repeats: int, seed: int) -> dict:
    x, q, warm = data(dist, n, batch, seed)
    radius = ng.CDNA().neighbor_radius  # the engine's question: k nearest within this radius
    tree = cKDTree(x)
    tree.query(q[:100], k=16, workers=-1)
    t_base, _ = median_time(lambda: tree.query(q, k=16, distance_upper_bound=radius, workers=-1), repeats)
    t_unbounded, _ = median_time(lambda: tree.query(q, k=16, workers=-1), repeats)
    t_emit, res = median_time(
        lambda eng: eng.emit_batch(CHAT, q), repeats, setup=lambda: fresh_engine(x, "cpu", warm)
    )
    steady_eng = fresh_engine(x, "cpu", warm)
    steady = []
    for i in range(3):
        qi = data(dist, 0, batch, seed + 100 + i)[1]
        t0 = time.perf_counter()
        steady_eng.emit_batch(CHAT, qi)
        steady.append(batch / (time.perf_counter() - t0))
    single_eng = fresh_engine(x, "cpu", warm)
    m = 2000
    t0 = time.perf_counter()
    for v in q[:m]:
        single_eng.emit(CHAT, v)
    single = m / (time.perf_counter() - t0)
    out = {
        "device": "cpu",
        "dist": dist,
        "n_resident": n,
        "batch": batch,
        "k": 16,
        "neighbor_radius": radius,
        "ckdtree_query_s": t_base,
        "ckdtree_queries_per_s": batch / t_base,
        "ckdtree_unbounded_query_s": t_unbounded,
        "emit_batch_s": t_emit,
        "emit_batch_events_per_s": batch / t_emit,
        "ratio_vs_ckdtree": t_base / t_emit,
        "ratio_unbounded": t_unbounded / t_emit,
        "novel_rate": res.novel_rate,
        "mean_neighbors": float((res.neighbor_ids >= 0).sum(1).float().mean()),
        "mean_activation_spread": float(res.activation_spread.float().mean()),
        "steady_events_per_s": steady,
        "single_emit_per_s": single,
    }
    print(
        f"cpu  {dist:9s} N={n:>9,d}  emit_batch {batch / t_emit:>10,.0f} ev/s  "
        f"cKDTree k=16 r={radius:g} {batch / t_base:>10,.0f} q/s  ratio {t_base / t_emit:5.2f}  "
        f"(r=inf {batch / t_unbounded:,.0f} q/s, ratio {t_unbounded / t_emit:5.2f})  "
        f"novel {res.novel_rate:.2f}  nbrs {out['mean_neighbors']:.1f}  "
        f"steady {', '.join(f'{s:,.0f}' for s in steady)}  "
        f"single emit {single:,.0f}/s",
        flush=True,
    )
    return out


def bench_gpu(dist: str, n: int, batch: int, repeats: int, seed: int) -> dict:
    x, q, warm = data(dist, n, batch, seed)
    xt, qt = torch.from_numpy(x).cuda(), torch.from_numpy(q).cuda()

    def cdist_topk():
        outs = []
        for s in range(0, len(qt), 1024):
            d = torch.cdist(qt[s : s + 1024], xt)
            outs.append(torch.topk(d, 16, dim=1, largest=False).indices)
        torch.cuda.synchronize()
        return outs

    cdist_topk()
    t_base, _ = median_time(cdist_topk, repeats)

    def run(eng):
        r = eng.emit_batch(CHAT, q)
        torch.cuda.synchronize()
        return r

    t_emit, res = median_time(run, repeats, setup=lambda: fresh_engine(x, "cuda", warm))
    print(
        f"cuda {dist:9s} N={n:>9,d}  emit_batch {batch / t_emit:>10,.0f} ev/s  "
        f"cdist+topk {batch / t_base:>10,.0f} q/s  ratio {t_base / t_emit:5.2f}",
        flush=True,
    )
    return {
        "device": torch.cuda.get_device_name(),
        "dist": dist,
        "n_resident": n,
        "batch": batch,
        "k": 16,
        "cdist_topk_s": t_base,
        "emit_batch_s": t_emit,
        "emit_batch_events_per_s": batch / t_emit,
        "ratio_vs_cdist_topk": t_base / t_emit,
        "novel_rate": res.novel_rate,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="*", default=[10_000, 100_000], help="CPU resident sizes")
    p.add_argument("--gpu-n", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", default=str(Path(__file__).resolve().parents[1] / "benchmarks/results/bench_emit.json")
    )
    a = p.parse_args()
    results = {"machine": machine(), "args": vars(a), "cpu": [], "gpu": []}
    print("# emit_batch vs exact kNN of the same batch;", json.dumps(results["machine"]))
    for n in a.n:
        for dist in ("uniform", "dense", "clustered"):
            results["cpu"].append(bench_cpu(dist, n, a.batch, a.repeats, a.seed))
    if torch.cuda.is_available():
        for dist in ("uniform", "clustered"):
            results["gpu"].append(bench_gpu(dist, a.gpu_n, a.batch, a.repeats, a.seed))
    else:
        print("# no CUDA device: the N = 1e6 GPU rows are skipped")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(f"# wrote {a.json}")


if __name__ == "__main__":
    main()
