"""A mixed workload for persistence tests: single emits, batches, seeded tokens and CDNA changes."""

from __future__ import annotations

import numpy as np
import pandas as pd

import neurograph as ng

CHAT = "signal.input.external.text.chat"
TYPES = (CHAT, "signal.input.internal.thought", "signal.input.external.vision.object")


def clustered(rng: np.random.Generator, n: int, centers: int = 12, spread: float = 0.05) -> np.ndarray:
    """``[n, 8]`` points around a few centres: many familiar signals and learned edges."""
    c = rng.uniform(-0.7, 0.7, (centers, 8))  # (centers, 8)
    return (c[rng.integers(0, centers, n)] + rng.normal(0.0, spread, (n, 8))).astype(np.float32)  # (n, 8)


def run_workload(eng: ng.Engine, seed: int = 0, steps: int = 40) -> list[int]:
    """Apply a deterministic mix of operations; returns every token id an emit returned."""
    rng = np.random.default_rng(seed)
    ids: list[int] = []
    for step in range(steps):
        roll = rng.random()
        if roll < 0.45:
            pri = int(rng.integers(0, 256))
            r = eng.emit(TYPES[step % 3], clustered(rng, 1)[0], priority=pri, kind="event")
            ids.append(r.token_id)
        elif roll < 0.85:
            b = int(rng.integers(1, 60))
            types = CHAT if step % 2 else [TYPES[i % 3] for i in range(b)]
            out = eng.emit_batch(types, clustered(rng, b), priorities=rng.integers(0, 256, b), note=step)
            ids.extend(out.token_ids.tolist())
        elif roll < 0.92:
            eng.add_tokens(clustered(rng, 3), kinds=["goal", "actuator", "concept"])
        elif roll < 0.97:
            eng.update_cdna(learning_rate=float(rng.uniform(0.05, 0.3)))
        elif len(eng.history) > 1:
            eng.rollback_cdna()
    return ids


def state_of(eng: ng.Engine) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What must survive a restart: tokens, edges, and the counters that are not timings."""
    stats = eng.stats()
    keep = ("tokens", "edges", "tick", "signals", "novel", "calls", "token_capacity", "edge_capacity")
    keep += ("memory_bytes", "cdna_version", "cdna_hash", "rejected", "clamped", "quota_refusals")
    return eng.tokens(), eng.edges(), {k: stats[k] for k in keep}


def assert_same_state(a: ng.Engine, b: ng.Engine) -> None:
    ta, ea, sa = state_of(a)
    tb, eb, sb = state_of(b)
    pd.testing.assert_frame_equal(ta, tb)
    pd.testing.assert_frame_equal(ea, eb)
    assert sa == sb
    assert a.history.to_dict()["versions"] == b.history.to_dict()["versions"]
    assert [(e["action"], e["version"], e["hash"]) for e in a.history.log] == [
        (e["action"], e["version"], e["hash"]) for e in b.history.log
    ]
