#!/usr/bin/env python3
"""SignalPipeline throughput: ``process_text`` one message at a time and ``process_batch``, split into
gateway / core (the engine) / actions, with baselines timed in the same run.

Workload: chat-like messages (4-12 words drawn from a fixed 2,000-word vocabulary, some repeated so that
a share is familiar) through the default pipeline: the built-in ``builtin.text_chat`` sensor with the
``hashed`` encoder, the default rules (``text_response`` hot; ``log`` and ``metrics`` cold). The engine
holds ``--resident`` tokens before the run: the gateway's encodings of as many other messages, added
with ``Engine.add_tokens``. Throughput is wall time from the first message until the cold queue is
drained (``pipe.join()``), so the cold actions count too.

Baselines, same run, same messages:
  ``engine.emit`` / ``engine.emit_batch`` on the pre-encoded vectors: the core alone;
  the same pipeline over a **null core** (``emit`` returns a ready result and does no work): the
  pipeline's own cost, comparable to the old project's Python pipeline with a core that did nothing
  (19,349 messages/s on this platform, issue 5);
  ``Gateway.push_text`` / ``push_texts`` alone: the encoder and the signal event.

Targets (issue 5, 2 CPU cores, hashed encoder, >= 10,000 resident tokens): ``process_text`` >= 20,000
messages/s, ``process_batch`` >= 200,000 messages/s. The GPU rows run when CUDA is present (the engine
on ``cuda``; gateway and actions stay on the host); without it they are skipped with a note.

Usage:
  python scripts/bench_pipeline.py                      # the defaults below, JSON under benchmarks/results/
  python scripts/bench_pipeline.py --messages 2000 --batch-messages 20000 --json /tmp/out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmeta import machine

import neurograph as ng
from neurograph.gateway import Gateway
from neurograph.pipeline import STATS_KEYS, SignalPipeline

OLD_PIPELINE_PER_S = 19_349  # the old project's Python pipeline, no-op core, this platform (issue 5)
TARGET_ONE, TARGET_BATCH = 20_000, 200_000  # messages/s (issue 5)


def vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(n)]


def messages(n: int, vocab: list[str], rng: np.random.Generator, repeat: float = 0.3) -> list[str]:
    """``n`` messages; a share ``repeat`` of them repeats an earlier one (familiar signals)."""
    out: list[str] = []
    for i in range(n):
        if i and rng.random() < repeat:
            out.append(out[int(rng.integers(0, i))])
        else:
            words = rng.choice(len(vocab), int(rng.integers(4, 13)))
            out.append(" ".join(vocab[w] for w in words).capitalize() + rng.choice([".", "?", "!"]))
    return out


def fresh_engine(device: str, resident: np.ndarray) -> ng.Engine:
    eng = ng.Engine(device=device, seed=0, capacity=max(1024, 2 * len(resident)))
    eng.add_tokens(resident)
    eng.emit_batch("signal.input.external.bench.warmup", resident[:8])  # builds the index
    return eng


class NullCore:
    """An engine stand-in that does no work: ``emit`` returns a ready result (the null-core baseline)."""

    def __init__(self, one: Any, batch: Any) -> None:
        self.bus, self._one, self._batch = ng.EventBus(), one, batch

    def emit(self, *args: Any, **kwargs: Any) -> Any:
        return self._one

    def emit_batch(self, *args: Any, **kwargs: Any) -> Any:
        return self._batch


async def run_one(pipe: SignalPipeline, texts: list[str]) -> dict[str, Any]:
    for t in texts[:50]:  # warm-up (caches, first allocations)
        await pipe.process_text(t)
    await pipe.join()
    before = dict(pipe.totals)
    c0, t0 = time.process_time(), time.perf_counter()
    for t in texts:
        await pipe.process_text(t)
    await pipe.join()
    wall = time.perf_counter() - t0
    return _summary(pipe, before, len(texts), wall, time.process_time() - c0)


async def run_batches(pipe: SignalPipeline, texts: list[str], size: int) -> dict[str, Any]:
    await pipe.process_batch(texts[:size])  # warm-up
    await pipe.join()
    before = dict(pipe.totals)
    c0, t0 = time.process_time(), time.perf_counter()
    for s in range(0, len(texts), size):
        await pipe.process_batch(texts[s : s + size])
    await pipe.join()
    wall = time.perf_counter() - t0
    return _summary(pipe, before, len(texts), wall, time.process_time() - c0) | {"batch_size": size}


def _summary(
    pipe: SignalPipeline, before: dict[str, float], n: int, wall: float, cpu: float
) -> dict[str, Any]:
    split = {k: (pipe.totals[k] - before[k]) / n * 1e3 for k in STATS_KEYS}  # us per message
    return {
        "messages": n,
        "wall_s": wall,
        "cpu_s": cpu,  # process CPU time (all threads): read against wall_s when the machine is busy
        "messages_per_s": n / wall,
        "us_per_message": {k.replace("_time_ms", ""): v for k, v in split.items()}
        | {"other": wall / n * 1e6 - split["total_time_ms"]},
    }


def bench(device: str, a: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(a.seed)
    vocab = vocabulary(2000, rng)
    resident_texts = messages(a.resident, vocab, rng, repeat=0.0)
    one_texts = messages(a.messages, vocab, rng)
    batch_texts = messages(a.batch_messages, vocab, rng)
    gw = Gateway()
    resident = gw.push_texts(resident_texts).vectors  # (N, 8): what the gateway makes of them
    out: dict[str, Any] = {"device": device if device == "cpu" else torch.cuda.get_device_name()}

    # the pipeline, one message at a time and in batches
    pipe = SignalPipeline(fresh_engine(device, resident))
    out["process_text"] = one = asyncio.run(run_one(pipe, one_texts))
    out["process_text"]["novel_rate"] = pipe.actions.metrics["novel_rate"]
    pipe = SignalPipeline(fresh_engine(device, resident))
    out["process_batch"] = many = asyncio.run(run_batches(pipe, batch_texts, a.batch_size))
    out["process_batch"]["novel_rate"] = pipe.actions.metrics["novel_rate"]

    # baselines: the core alone on the same vectors
    sig = Gateway().push_texts(one_texts)
    eng = fresh_engine(device, resident)
    t0 = time.perf_counter()
    for v in sig.vectors:
        eng.emit(sig.event_type, v, 200)
    core_one = len(one_texts) / (time.perf_counter() - t0)
    sig = Gateway().push_texts(batch_texts)
    eng = fresh_engine(device, resident)
    t0 = time.perf_counter()
    for s in range(0, len(batch_texts), a.batch_size):
        eng.emit_batch(sig.event_type, sig.vectors[s : s + a.batch_size], 200)
    core_batch = len(batch_texts) / (time.perf_counter() - t0)

    # baselines: the pipeline over a core that does no work
    first = fresh_engine(device, resident)
    null = NullCore(
        first.emit(sig.event_type, sig.vectors[0], 200),
        first.emit_batch(sig.event_type, sig.vectors[: a.batch_size], 200),
    )
    null_one = asyncio.run(run_one(SignalPipeline(null), one_texts))  # type: ignore[arg-type]
    null_batch = asyncio.run(run_batches(SignalPipeline(null), batch_texts, a.batch_size))  # type: ignore[arg-type]

    # baselines: the gateway alone
    g = Gateway()
    t0 = time.perf_counter()
    for t in one_texts:
        g.push_text(t)
    gw_one = len(one_texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for s in range(0, len(batch_texts), a.batch_size):
        g.push_texts(batch_texts[s : s + a.batch_size])
    gw_batch = len(batch_texts) / (time.perf_counter() - t0)

    out["baselines_per_s"] = {
        "engine_emit": core_one,
        "engine_emit_batch": core_batch,
        "null_core_process_text": null_one["messages_per_s"],
        "null_core_process_batch": null_batch["messages_per_s"],
        "gateway_push_text": gw_one,
        "gateway_push_texts": gw_batch,
        "old_python_pipeline_null_core": OLD_PIPELINE_PER_S,
    }
    out["ratios"] = {
        "process_text_vs_engine_emit": one["messages_per_s"] / core_one,
        "process_batch_vs_engine_emit_batch": many["messages_per_s"] / core_batch,
        "null_core_process_text_vs_old_pipeline": null_one["messages_per_s"] / OLD_PIPELINE_PER_S,
        "process_text_vs_target": one["messages_per_s"] / TARGET_ONE,
        "process_batch_vs_target": many["messages_per_s"] / TARGET_BATCH,
    }
    out["null_core_us_per_message"] = {
        "process_text": null_one["us_per_message"],
        "process_batch": null_batch["us_per_message"],
    }
    out["targets_met"] = {
        "process_text_20k": one["messages_per_s"] >= TARGET_ONE,
        "process_batch_200k": many["messages_per_s"] >= TARGET_BATCH,
    }
    b, o = out["baselines_per_s"], out["process_text"]["us_per_message"]
    print(
        f"{out['device']:>5s}  process_text {one['messages_per_s']:>9,.0f}/s "
        f"(gateway {o['gateway']:.1f} + core {o['core']:.1f} + actions {o['action']:.1f} us)  "
        f"engine.emit {core_one:>9,.0f}/s  null core {b['null_core_process_text']:>9,.0f}/s  "
        f"[old pipeline {OLD_PIPELINE_PER_S:,}/s]",
        flush=True,
    )
    o = out["process_batch"]["us_per_message"]
    print(
        f"{out['device']:>5s}  process_batch {many['messages_per_s']:>9,.0f}/s "
        f"(gateway {o['gateway']:.2f} + core {o['core']:.2f} + actions {o['action']:.2f} us)  "
        f"engine.emit_batch {core_batch:>9,.0f}/s  null core {b['null_core_process_batch']:>9,.0f}/s",
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resident", type=int, default=10_000, help="tokens in the engine before the run")
    p.add_argument("--messages", type=int, default=5_000, help="process_text calls")
    p.add_argument("--batch-messages", type=int, default=100_000, help="messages through process_batch")
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", default=str(Path(__file__).resolve().parents[1] / "benchmarks/results/bench_pipeline.json")
    )
    a = p.parse_args()
    results: dict[str, Any] = {"machine": machine(), "args": vars(a), "encoder": "hashed", "runs": []}
    print("# SignalPipeline throughput;", json.dumps(results["machine"]))
    results["runs"].append(bench("cpu", a))
    if torch.cuda.is_available():
        results["runs"].append(bench("cuda", a))
    else:
        results["gpu_note"] = "no CUDA device: the GPU rows (engine on cuda) are skipped"
        print("# no CUDA device: the GPU rows are skipped")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2))
    print(f"# wrote {a.json}")


if __name__ == "__main__":
    main()
