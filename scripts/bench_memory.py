"""What remembering costs: bytes per token of the engine's memory, and emit_batch with labels and payloads.

Two questions, each answered in one process (issue 15's targets):

1. Memory beyond the per-token tensors at ``--tokens`` tokens (default 1e6): the bytes of
   :class:`~neurograph.memory.TokenMemory`'s per-slot arrays and label pairs divided by the tokens (target
   <= 64 B), payload bytes reported apart. The stream: ``--tokens`` novel signals in batches of 1e5 (each
   with a label of 16 and a small dict payload), then 20 % of them again (resonating signals, sampled).
2. ``emit_batch`` rate with ``labels`` and ``payloads`` against the same call without them, on the same
   data into fresh engines, alternating, best of ``--repeats`` (target >= 0.8x). Payloads: a short text
   per row (what ``SignalPipeline.process_batch`` keeps), and a small dict per row.

``python scripts/bench_memory.py [--tokens 1000000] [--batch 20000] [--repeats 5]``; JSON in
``benchmarks/results/bench_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import neurograph as ng

CHAT = "signal.input.external.text.chat"
OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bench_memory.json"


def memory_per_token(n: int, chunk: int = 100_000, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    cdna = ng.CDNA().replace(max_tokens=4 * n, novelty_threshold=1e-4, neighbor_radius=1e-3)
    eng = ng.Engine(cdna=cdna, seed=0, capacity=n)
    names = [f"label{i}" for i in range(16)]
    x_all = rng.uniform(-1, 1, (n, 8)).astype(np.float32)
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        x = x_all[start : start + chunk]
        labels = [names[i] for i in rng.integers(0, 16, len(x))]
        payloads = [{"row": start + i} for i in range(len(x))]
        eng.emit_batch(CHAT, x, labels=labels, payloads=payloads)
    again = rng.choice(n, n // 5, replace=False)
    for start in range(0, again.size, chunk):
        rows = again[start : start + chunk]
        labels = [names[i] for i in rng.integers(0, 16, rows.size)]
        eng.emit_batch(CHAT, x_all[rows], labels=labels, payloads=[{"again": int(r)} for r in rows])
    secs = time.perf_counter() - t0
    mem = eng.memory
    tokens = eng.token_state.n_alive
    return {
        "tokens": tokens,
        "signals": eng.tick,
        "memory_bytes": mem.nbytes(),
        "bytes_per_token": mem.nbytes() / tokens,
        "payload_bytes": mem.payload_bytes,
        "kept_signals": len(mem.kept),
        "token_tensor_bytes_per_token": eng.token_state.nbytes() / eng.token_state.capacity,
        "seconds": secs,
    }


def rates(batch: int, repeats: int, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.8, 0.8, (64, 8))
    x = (centres[rng.integers(0, 64, batch)] + rng.normal(0, 0.05, (batch, 8))).astype(np.float32)
    cdna = ng.CDNA.calibrate(x)
    labels = [f"topic{i % 8}" for i in range(batch)]
    texts = [f"message number {i} about topic {i % 8}" for i in range(batch)]
    dicts = [{"row": i, "user": i % 97} for i in range(batch)]
    variants = {"plain": {}, "texts": {"labels": labels, "payloads": texts}}
    variants["dicts"] = {"labels": labels, "payloads": dicts}
    best = dict.fromkeys(variants, float("inf"))
    names = list(variants)
    for r in range(repeats):
        for name in names[r % 3 :] + names[: r % 3]:  # rotated: no variant always runs first
            kwargs = variants[name]
            eng = ng.Engine(cdna=cdna, seed=0)
            eng.emit_batch(CHAT, x[:100])  # warm
            t0 = time.perf_counter()
            eng.emit_batch(CHAT, x, **kwargs)
            best[name] = min(best[name], time.perf_counter() - t0)
    out = {f"{k}_signals_per_s": batch / v for k, v in best.items()}
    out["ratio_texts"] = best["plain"] / best["texts"]
    out["ratio_dicts"] = best["plain"] / best["dicts"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rate = rates(args.batch, args.repeats)
    print(
        f"emit_batch of {args.batch:,} signals: plain {rate['plain_signals_per_s']:,.0f}/s, with labels and "
        f"texts {rate['texts_signals_per_s']:,.0f}/s ({rate['ratio_texts']:.2f}x), with labels and dicts "
        f"{rate['dicts_signals_per_s']:,.0f}/s ({rate['ratio_dicts']:.2f}x); target >= 0.80x"
    )
    mem = memory_per_token(args.tokens)
    print(
        f"memory at {mem['tokens']:,} tokens ({mem['signals']:,} signals): "
        f"{mem['bytes_per_token']:.1f} B per token beyond the token tensors "
        f"({mem['token_tensor_bytes_per_token']:.0f} B); target <= 64 B; "
        f"payloads kept apart: {mem['payload_bytes'] / 2**20:.1f} MiB for {mem['kept_signals']:,} signals"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads()},
        "args": vars(args),
        "emit_batch": rate,
        "memory": mem,
        "targets": {"bytes_per_token": 64, "ratio": 0.8},
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
