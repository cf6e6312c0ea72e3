#!/usr/bin/env python3
"""Emit throughput with a durable store (durability full / normal / off) against the in-memory engine.

Workload: an engine holding N resident tokens (uniform in the CDNA box, seeded with ``add_tokens``
before the clock starts), then S single ``emit`` calls or K ``emit_batch`` calls of B = 1,000 signals from
the same distribution (the whole semantics: novelty, neighbours, edges, activation), on a fresh engine
per measurement. Every store mode logs each call to SQLite (WAL) before it returns: ``full`` fsyncs each
commit, ``normal`` and ``off`` do not (see ``neurograph/persist/log.py``). No snapshot is taken while the
clock runs, except in the ``full+snapshots`` row (a snapshot every ``--snapshot-every`` signals).

Baseline, timed in the same run on the same data: the engine without a store (``memory``).
``ratio = store emits/s / memory emits/s`` (the issue's target: batches of 1,000 with ``full`` >= 0.5).
Modes are interleaved within each repeat and the median of ``--repeats`` is reported, so that load from
other processes hits every mode alike. With CUDA present the batch rows are measured on the GPU too.

Usage:
  python scripts/bench_persist.py                       # N = 10,000, S = 500, K = 20 on CPU
  python scripts/bench_persist.py --singles 200 --batches 5 --repeats 1 --json /tmp/out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import benchmeta
import numpy as np
import torch

import neurograph as ng

CHAT = "signal.input.external.bench.vector"
MODES = ("memory", "off", "normal", "full", "full+snapshots")


def machine(store_dir: Path) -> dict:
    return benchmeta.machine(store_filesystem=filesystem(store_dir))


def filesystem(path: Path) -> str:
    """Type of the filesystem holding ``path`` (fsync cost depends on it), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                _, mount, fstype, *_ = line.split()
                if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                    best, kind = mount, fstype
    except OSError:
        pass
    return f"{kind} on {best or '?'}"


def engine(mode: str, device: str, residents: np.ndarray, root: Path, snapshot_every: int) -> ng.Engine:
    """A fresh engine holding ``residents``; stores start with a snapshot so nothing is pending."""
    if mode == "memory":
        eng = ng.Engine(device=device, capacity=4 * len(residents))
    else:
        durability = mode.split("+")[0]
        every = snapshot_every if mode.endswith("+snapshots") else None
        path = Path(tempfile.mkdtemp(dir=root)) / "store"
        eng = ng.Engine(
            device=device, capacity=4 * len(residents), path=path, durability=durability, snapshot_every=every
        )
    eng.add_tokens(residents)
    eng.emit_batch(CHAT, residents[:16])  # builds the index
    if eng.store is not None:
        eng.save()
    return eng


def timed(eng: ng.Engine, signals: np.ndarray, batch: int) -> float:
    """Seconds to emit ``signals`` one by one (``batch == 1``) or in batches."""
    t0 = time.perf_counter()
    if batch == 1:
        for v in signals:
            eng.emit(CHAT, v)
    else:
        for i in range(0, len(signals), batch):
            eng.emit_batch(CHAT, signals[i : i + batch])
    if eng.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(device: str, modes: tuple[str, ...], a: argparse.Namespace, root: Path) -> list[dict]:
    rng = np.random.default_rng(a.seed)
    residents = rng.uniform(-1, 1, (a.n, 8)).astype(np.float32)
    kinds = [("single", 1, a.singles), ("batch", a.batch, a.batch * a.batches)]
    if device == "cuda":
        kinds = kinds[1:]  # the single-emit path is a CPU path
    signals = {name: rng.uniform(-1, 1, (count, 8)).astype(np.float32) for name, _, count in kinds}
    secs: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.repeats):
        for name, b, _count in kinds:
            for mode in modes:
                if mode.endswith("+snapshots") and name == "single":
                    continue
                eng = engine(mode, device, residents, root, a.snapshot_every)
                secs.setdefault((name, mode), []).append(timed(eng, signals[name], b))
                eng.close()
    rows = []
    for name, b, count in kinds:
        base = count / statistics.median(secs[(name, "memory")])
        for mode in modes:
            if (name, mode) not in secs:
                continue
            rate = count / statistics.median(secs[(name, mode)])
            rows.append(
                {
                    "device": device,
                    "calls": name,
                    "batch": b,
                    "signals": count,
                    "mode": mode,
                    "emits_per_s": rate,
                    "ratio_to_memory": rate / base,
                    "seconds": secs[(name, mode)],
                }
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="resident tokens")
    p.add_argument("--singles", type=int, default=500, help="single emit calls per measurement")
    p.add_argument("--batches", type=int, default=20, help="emit_batch calls per measurement")
    p.add_argument("--batch", type=int, default=1000, help="signals per emit_batch call")
    p.add_argument("--snapshot-every", type=int, default=10_000, help="signals, for full+snapshots")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="where the stores go (default: a temporary directory)")
    p.add_argument(
        "--json", default=str(Path(__file__).resolve().parents[1] / "benchmarks/results/bench_persist.json")
    )
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_persist_", dir=a.dir))
    try:
        results = {"machine": machine(root), "config": vars(a), "rows": []}
        print("# emits/s with a durable store vs in memory;", json.dumps(results["machine"]))
        results["rows"] += bench("cpu", MODES, a, root)
        if torch.cuda.is_available():
            results["rows"] += bench("cuda", ("memory", "full"), a, root)
        else:
            results["cuda"] = "skipped: no CUDA device on this machine"
            print("# cuda: skipped (no CUDA device on this machine)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'device':6} {'calls':6} {'batch':>5} {'mode':15} {'emits/s':>10} {'ratio':>6}")
    for r in results["rows"]:
        line = f"{r['device']:6} {r['calls']:6} {r['batch']:5d} {r['mode']:15} {r['emits_per_s']:10.0f}"
        print(f"{line} {r['ratio_to_memory']:6.2f}")
    full = [r for r in results["rows"] if (r["device"], r["calls"], r["mode"]) == ("cpu", "batch", "full")]
    results["target"] = {
        "what": "batches of 1,000 with durability full >= 0.5 x the in-memory emit rate (CPU)",
        "ratio": full[0]["ratio_to_memory"] if full else None,
        "met": bool(full and full[0]["ratio_to_memory"] >= 0.5),
    }
    print("# target:", json.dumps(results["target"]))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(f"# wrote {a.json}")


if __name__ == "__main__":
    main()
