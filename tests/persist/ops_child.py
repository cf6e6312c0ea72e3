"""A mixed workload for the SIGKILL test of every operation (``test_crash_ops.py``).

``python ops_child.py STORE DURABILITY SEED`` opens (or creates) a store and applies :func:`operations`
one by one, printing ``ack <i>`` after operation ``i`` returned. The test kills it at a random moment,
then compares the reopened store with a reference engine in memory that ran the acknowledged operations.

The operations mix familiar and novel emits, batches, dynamics steps (with ``hierarchy_every``),
explicit hierarchy rebuilds, edge upkeep and CDNA changes. Every emit carries labels and payloads (a text
for single emits, a dict per batch row), so what tokens stand for is held to the same promise.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

import neurograph as ng

CHAT = "signal.input.external.text.chat"
OPTIONS: dict[str, Any] = {"seed": 0, "hierarchy_every": 6, "dynamics": "eager"}


def operations(seed: int, n: int = 36) -> list[tuple[str, Any]]:
    """A reproducible list of ``(name, argument)`` operations."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.6, 0.6, (4, 8))

    def near(count: int) -> np.ndarray:
        return (centres[rng.integers(0, 4, count)] + rng.normal(0, 0.03, (count, 8))).astype(np.float32)

    ops: list[tuple[str, Any]] = [("emit_batch", near(60))]  # familiar signals need residents
    for _ in range(n - 1):
        roll = rng.random()
        if roll < 0.3:
            ops.append(("emit", near(1)[0]))  # mostly familiar
        elif roll < 0.4:
            ops.append(("emit", rng.uniform(-1, 1, 8).astype(np.float32)))  # novel
        elif roll < 0.6:
            x = np.concatenate(
                [near(int(rng.integers(3, 20))), rng.uniform(-1, 1, (3, 8)).astype(np.float32)]
            )
            ops.append(("emit_batch", x))
        elif roll < 0.72:
            ops.append(("run", int(rng.integers(2, 5))))
        elif roll < 0.8:
            ops.append(("hierarchy", None))
        elif roll < 0.88:
            ops.append(("learn", None))
        elif roll < 0.95:
            ops.append(("update_cdna", float(rng.choice([0.05, 0.1, 0.2]))))
        else:
            ops.append(("step", 1))
    return ops


def apply(eng: ng.Engine, op: tuple[str, Any]) -> None:
    name, arg = op
    if name == "emit":
        eng.emit(CHAT, arg, label=_label(arg), payload=f"signal at {float(arg[0]):.5f}")
    elif name == "emit_batch":
        labels = [_label(v) if i % 5 else None for i, v in enumerate(arg)]
        payloads = [{"row": i, "text": f"row {i} at {float(v[1]):.4f}"} for i, v in enumerate(arg)]
        eng.emit_batch(CHAT, arg, labels=labels, payloads=payloads)
    elif name == "run":
        eng.run(arg, every=2)
    elif name == "step":
        eng.step(arg)
    elif name == "hierarchy":
        eng.hierarchy()
    elif name == "learn":
        eng.learn()
    elif name == "update_cdna":
        eng.update_cdna(learning_rate=arg)
    else:
        raise ValueError(name)


def _label(v: np.ndarray) -> str:
    return "east" if v[0] > 0 else "west"


def memory_of(eng: ng.Engine) -> dict[int, dict[str, Any]]:
    """What every token stands for (``Engine.token`` without the geometry)."""
    geometry = ("kind", "level", "mass", "hits", "position")
    return {tid: {k: v for k, v in eng.token(tid).items() if k not in geometry} for tid in eng.tokens()["id"]}


def main() -> None:
    path, durability, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    eng = ng.Engine(path=path, durability=durability, snapshot_every=40, **OPTIONS)
    for i, op in enumerate(operations(seed)):
        apply(eng, op)
        sys.stdout.write(f"ack {i}\n")
        sys.stdout.flush()
    sys.stdout.write("done\n")
    sys.stdout.flush()
    eng.close()


if __name__ == "__main__":
    main()
