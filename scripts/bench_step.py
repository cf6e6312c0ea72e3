#!/usr/bin/env python3
"""Force-field step throughput: ms/step and steps/s of the dynamics backends, in the same process.

Workload: N tokens uniform in a cube sized so that a token's 16 nearest neighbours lie about one contact
distance away (default radius 0.05: most candidate pairs repel, wells act between unequal masses), every
token with ``--degree`` learned edges (springs) to random candidates, no parents. The neighbour list has
``k`` candidates per token: the exact kNN graph on the CPU (``neurograph.neighbors.knn_arrays``) and, on
a GPU, a synthetic list like ``../shared/bench/gpu_limits.py`` (``local``: i +- 256, ``random``), since an
exact 1e7 graph would take minutes. What is timed is the real step: the backend objects
``Engine.step`` runs (``neurograph.fields.backends``), fed with ``StepInputs`` packed from real stores,
stepping out of place with the skin check on the device, as inside ``Dynamics.run`` (no host sync).

CPU  (N = 1e4, 1e5): ``eager`` vs ``compiled`` (``reference``, the autograd oracle, at the smallest N);
     ratio = eager ms / compiled ms.
GPU  (N = 1e6, 1e7, when CUDA is present): ``reference`` (1e6 only), ``compiled``, ``triton``; effective
     GB/s against the traffic floor of ``neurograph.kernels.force_step.force_step_bytes`` (at the spec HBM
     bandwidth and at the copy bandwidth measured in the same run), and the ratio to the fused force kernel
     of ``gpu_limits.py`` timed on the same positions and neighbour list.

Usage:
  python scripts/bench_step.py                       # CPU 1e4, 1e5 (+ GPU 1e6, 1e7 when CUDA is present)
  python scripts/bench_step.py --n 10000 --reps 2 --json /tmp/out.json
  TRITON_INTERPRET=1 python scripts/bench_step.py --smoke   # every code path at toy sizes, CPU only
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchmeta import machine

from neurograph.cdna import CDNA
from neurograph.fields import StepInputs, pack_inputs
from neurograph.fields.backends import make_backend
from neurograph.kernels.force_step import force_step_bytes
from neurograph.neighbors import knn_arrays
from neurograph.state import EdgeState, TokenState

REPO = Path(__file__).resolve().parents[1]
GPU_LIMITS = REPO.parent / "shared" / "bench" / "gpu_limits.py"
DENSITY = 4e8  # tokens per unit volume: the 16th neighbour sits ~0.1 away, one contact distance (r = 0.05)
NOTES = [
    "ms_per_step: median over --reps timed runs of --steps steps, after one warm-up run; the step as "
    "Dynamics.run launches it (out of place, skin check on the device), without the per-K-steps host check",
    "first_call_s: the first step, compilation included (torch.compile / Triton); torch inductor's on-disk "
    "cache may be warm from an earlier run, so a cold compile can take longer",
    "floor_bytes: kernels.force_step.force_step_bytes(n, k, springs), every byte the fused step must move "
    "once; x_floor_at_*: ms_per_step over the floor's time at that bandwidth",
    "x_gpu_limits_fused: ms_per_step over the fused force kernel of ../shared/bench/gpu_limits.py (positions "
    "only, a simpler force) on the same positions and neighbour list",
]


def build(n: int, k: int, degree: int, device: str, nbr_kind: str, seed: int = 0):
    """Stores, CDNA and step inputs for ``n`` tokens with ``k`` candidates each (see the docstring)."""
    rng = np.random.default_rng(seed)
    side = (n / DENSITY) ** (1 / 8)
    pos = rng.uniform(-side / 2, side / 2, (n, 8)).astype(np.float32)
    tokens = TokenState(n, device)
    mass = rng.choice(np.array([0.5, 1.0, 1.5, 2.0], np.float32), n)
    tokens.append(n, 0, pos=pos, mass=mass, radius=np.float32(0.05), strength=np.float32(0.1))
    if nbr_kind == "knn":
        nbr, _ = knn_arrays(pos.astype(np.float64), pos.astype(np.float64), k, np.inf, exclude_self=True)
    elif nbr_kind == "local":
        nbr = (np.arange(n)[:, None] + rng.integers(-256, 257, (n, k))) % n
    else:
        nbr = rng.integers(0, n, (n, k))
    nbr_t = torch.from_numpy(nbr.astype(np.int32)).to(device)
    edges = EdgeState(max(4 * n, 1), n, 32, device)
    if degree:
        src = np.repeat(np.arange(n), degree)  # about half survive src < dst: ~degree edges per token
        dst = nbr[src, rng.integers(0, k, src.size)]
        keep = (src < dst) & (dst >= 0)
        pairs = np.unique(np.stack([src[keep], dst[keep]], 1), axis=0)
        m = len(pairs)
        edges.append(
            pairs[:, 0],
            pairs[:, 1],
            0,
            kind=0x50,
            weight=rng.uniform(0.2, 1, m).astype(np.float32),
            rest=np.float32(0.05),
            confidence=np.float32(0.5),
            mutability=1,
        )
    cdna = CDNA(skin=100.0)  # the list never goes stale while timing (unit axis scales, the default)
    springs = float(edges.degree[:n].float().mean()) if degree else 0.0
    return tokens, edges, cdna, nbr_t, springs


def inputs_for(backend, tokens, edges, cdna, nbr) -> StepInputs:
    """The step inputs as ``Dynamics`` packs them (spring tables only for the dense backends)."""
    return pack_inputs(tokens, edges, cdna, nbr, tokens.pos.clone(), dense=backend.dense)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, device: str, steps: int, reps: int) -> tuple[float, list[float]]:
    """Median ms per step over ``reps`` runs of ``steps`` steps (after one warm-up run)."""
    step(steps)
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step(steps)
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3 / steps)
    return statistics.median(times), times


def bench_backend(name: str, tokens, edges, cdna, nbr, device: str, steps: int, reps: int) -> dict:
    backend = make_backend(name)
    backend.begin(torch.Generator(device), 0.0, has_parents=False)
    inp = inputs_for(backend, tokens, edges, cdna, nbr)
    ctl0 = torch.tensor([0.0, 1.0, 0.0], device=device)  # one step done: every step completes the previous
    state = {"x": tokens.pos.clone(), "u": tokens.vel.clone(), "ctl": ctl0}

    def step(count: int) -> None:
        x, u, ctl = state["x"], state["u"], state["ctl"]
        with torch.no_grad():
            for _ in range(count):
                x, u, ctl = backend.step(x, u, ctl, inp, None)
        state.update(x=x.clone() if name == "triton" else x, u=u.clone() if name == "triton" else u, ctl=ctl)

    t0 = time.perf_counter()
    step(1)  # compiles (compiled, triton)
    sync(device)
    first = time.perf_counter() - t0
    ms, all_ms = time_steps(step, device, steps, reps)
    return {
        "backend": name,
        "ms_per_step": round(ms, 4),
        "steps_per_s": round(1e3 / ms, 1),
        "first_call_s": round(first, 2),
        "ms_all": [round(t, 4) for t in all_ms],
        "steps_done": int(state["ctl"][1].item()),  # all of them: the list never went stale
    }


def bench_cpu(n: int, k: int, degree: int, steps: int, reps: int, smallest: bool) -> dict:
    t0 = time.perf_counter()
    tokens, edges, cdna, nbr, springs = build(n, k, degree, "cpu", "knn")
    out = {
        "n": n,
        "k": k,
        "springs_per_token": round(springs, 2),
        "neighbor_list": "exact kNN graph",
        "build_s": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows": [],
    }
    names = ["reference", "eager", "compiled"] if smallest else ["eager", "compiled"]
    for name in names:
        row = bench_backend(name, tokens, edges, cdna, nbr, "cpu", steps, reps)
        out["rows"].append(row)
        ms, rate, first = row["ms_per_step"], row["steps_per_s"], row["first_call_s"]
        print(
            f"cpu n={n:>9,} k={k} {name:>9}: {ms:9.3f} ms/step {rate:8.1f} steps/s (first {first} s)",
            flush=True,
        )
    by = {r["backend"]: r["ms_per_step"] for r in out["rows"]}
    out["compiled_speedup_vs_eager"] = round(by["eager"] / by["compiled"], 2)
    print(f"cpu n={n:>9,}: compiled is {out['compiled_speedup_vs_eager']}x eager", flush=True)
    return out


def load_gpu_limits(path: Path):
    """``gpu_limits.py`` as a module (its argument parser sees no arguments), or ``None``."""
    if not path.exists():
        return None
    argv = sys.argv
    try:
        sys.argv = [str(path)]
        spec = importlib.util.spec_from_file_location("gpu_limits", path)
        mod = importlib.util.module_from_spec(spec)
        with contextlib.redirect_stdout(sys.stderr):
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
        return mod if getattr(mod, "TRITON_OK", False) else None
    finally:
        sys.argv = argv


def copy_bandwidth(device: str, nbytes: int) -> float:
    a = torch.empty(nbytes // 4, device=device).uniform_()
    b = torch.empty_like(a)
    ms, _ = time_steps(lambda count: [b.copy_(a) for _ in range(count)], device, 5, 3)
    return 2 * nbytes / (ms / 1e3)


def bench_gpu(
    n: int, k: int, degree: int, steps: int, reps: int, device: str, limits, copy_bw: float
) -> list[dict]:
    results = []
    peak = limits.peak_hbm_guess(torch.cuda.get_device_name(0)) if (limits and device == "cuda") else None
    for kind in ("local", "random"):
        tokens, edges, cdna, nbr, springs = build(n, k, degree, device, kind)
        floor_bytes = force_step_bytes(n, k, springs=round(springs))
        out = {
            "n": n,
            "k": k,
            "neighbor_list": kind,
            "springs_per_token": round(springs, 2),
            "floor_bytes": floor_bytes,
            "rows": [],
        }
        names = (["reference"] if n <= 1_000_000 else []) + ["compiled", "triton"]
        for name in names:
            try:
                row = bench_backend(name, tokens, edges, cdna, nbr, device, steps, reps)
            except Exception as exc:  # one failing backend must not hide the others
                row = {"backend": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                print(f"gpu n={n:,} {kind} {name}: FAILED {row['error']}", flush=True)
                out["rows"].append(row)
                continue
            sec = row["ms_per_step"] / 1e3
            row["effective_GBps"] = round(floor_bytes / sec / 1e9, 1)
            row["x_floor_at_copy_bw"] = round(sec / (floor_bytes / copy_bw), 2)
            if peak:
                row["x_floor_at_spec_bw"] = round(sec / (floor_bytes / peak), 2)
            out["rows"].append(row)
            spec = row.get("x_floor_at_spec_bw", "-")
            print(
                f"gpu n={n:>11,} {kind:>6} {name:>9}: {row['ms_per_step']:8.4f} ms/step "
                f"{row['effective_GBps']:7.1f} GB/s eff, {spec}x floor(spec), "
                f"{row['x_floor_at_copy_bw']}x floor(copy)"
            )
        if limits is not None:
            ms = time_gpu_limits(limits, tokens.pos[:n].contiguous(), nbr, device, steps, reps)
            out["gpu_limits_fused_ms"] = round(ms, 4)
            for row in out["rows"]:
                if "ms_per_step" in row:
                    row["x_gpu_limits_fused"] = round(row["ms_per_step"] / ms, 2)
            print(f"gpu n={n:>11,} {kind:>6} gpu_limits fused kernel: {ms:8.4f} ms/step", flush=True)
        else:
            out["gpu_limits_fused_ms"] = f"skipped: {GPU_LIMITS} not found or triton unusable"
        results.append(out)
        if device == "cuda":
            torch.cuda.empty_cache()
    return results


def time_gpu_limits(limits, x: torch.Tensor, nbr: torch.Tensor, device: str, steps: int, reps: int) -> float:
    """ms per step of ``gpu_limits.py``'s fused force kernel on the same positions and list."""
    v = torch.zeros_like(x)
    xo, vo = torch.empty_like(x), torch.empty_like(x)

    def run(count: int) -> None:
        for _ in range(count):
            limits.triton_force_step(x, v, nbr, xo, vo)

    return time_steps(run, device, steps, reps)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="*", default=[10_000, 100_000], help="CPU sizes")
    p.add_argument("--gpu-n", type=int, nargs="*", default=[1_000_000, 10_000_000], help="GPU sizes")
    p.add_argument("--k", type=int, default=16, help="neighbour-list candidates per token")
    p.add_argument("--degree", type=int, default=4, help="learned edges per token (about)")
    p.add_argument("--steps", type=int, default=20, help="steps per timed run")
    p.add_argument("--reps", type=int, default=3, help="timed runs (the median is reported)")
    p.add_argument("--gpu-limits", default=str(GPU_LIMITS), help="path of ../shared/bench/gpu_limits.py")
    smoke = "toy sizes; the GPU section on CPU tensors when TRITON_INTERPRET=1 (checks the script only)"
    p.add_argument("--smoke", action="store_true", help=smoke)
    p.add_argument("--json", default=str(REPO / "benchmarks/results/bench_step.json"))
    a = p.parse_args()
    if a.smoke:
        a.n, a.gpu_n, a.steps, a.reps = [2000], [512], 2, 1
    results = {
        "machine": machine(triton_interpret=os.environ.get("TRITON_INTERPRET", "0") == "1"),
        "args": vars(a),
        "notes": NOTES,
        "cpu": [],
        "gpu": [],
    }
    print("# force-field step;", json.dumps(results["machine"]), flush=True)
    for i, n in enumerate(a.n):
        results["cpu"].append(bench_cpu(n, a.k, a.degree, a.steps, a.reps, smallest=i == 0))
    gpu_device = "cuda" if torch.cuda.is_available() else None
    if gpu_device is None and a.smoke and results["machine"]["triton_interpret"]:
        gpu_device = "cpu"  # the GPU section's code paths through the Triton interpreter
    if gpu_device is None:
        results["gpu_note"] = (
            "no CUDA device: the N = 1e6, 1e7 GPU rows (reference, compiled, triton) skipped"
        )
        print(f"# {results['gpu_note']}")
    else:
        limits = load_gpu_limits(Path(a.gpu_limits))
        copy_bw = copy_bandwidth(gpu_device, (2 << 30) if gpu_device == "cuda" else (16 << 20))
        results["gpu_copy_GBps"] = round(copy_bw / 1e9, 1)
        for n in a.gpu_n:
            results["gpu"].extend(bench_gpu(n, a.k, a.degree, a.steps, a.reps, gpu_device, limits, copy_bw))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(f"# wrote {a.json}")


if __name__ == "__main__":
    main()
