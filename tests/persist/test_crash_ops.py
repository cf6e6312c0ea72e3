"""DESIGN §8 under SIGKILL for every operation that changes the state, in every durability mode.

A child process (``ops_child.py``) applies a mixed workload — familiar and novel emits, batches, ``run``
with ``hierarchy_every``, ``step``, ``hierarchy()``, ``learn()``, CDNA changes — to a store and prints an
acknowledgement after each call returned. The test SIGKILLs it at random moments, reopens the store with
``Engine.open(path)`` exactly as the README shows it, and compares it with a reference engine in memory
that ran the acknowledged operations (or one more: the kill can land between a call's return and its
acknowledgement): the same token ids, positions, masses and hits, the same edges and weights, the same
fields. ``normal`` and ``off`` keep what the OS has after a process kill, so they are held to the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurograph as ng
from tests.persist.ops_child import OPTIONS, apply, memory_of, operations

CHILD = Path(__file__).with_name("ops_child.py")
SEED = 3
KILLS = 3  # per durability mode


def _run_and_kill(path: Path, durability: str, kill_after: int) -> int:
    """Start the child, SIGKILL it once it acknowledged operation ``kill_after``; returns how many
    operations it acknowledged in all."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), durability, str(SEED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked = 0
    try:
        for line in proc.stdout:
            if line.startswith("ack "):
                acked = int(line.split()[1]) + 1
                if acked > kill_after:
                    proc.send_signal(signal.SIGKILL)
                    break
        rest = proc.stdout.read()  # lines written before the kill landed
        acked = max([acked] + [int(w.split()[1]) + 1 for w in rest.splitlines() if w.startswith("ack ")])
    finally:
        proc.kill()
        proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode in (-signal.SIGKILL, 0), err
    return acked


def _snapshot(eng: ng.Engine) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int, dict]:
    tokens = eng.tokens().drop(columns=["activation"]).reset_index(drop=True)
    edges = eng.edges().reset_index(drop=True)
    fields = eng.hierarchy(rebuild=False).to_pandas().reset_index(drop=True)
    return tokens, edges, fields, eng.cdna.version, memory_of(eng)


def _equal(a: tuple, b: tuple) -> bool:
    try:
        for x, y in zip(a[:3], b[:3]):
            pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-5, atol=1e-6)
    except AssertionError:
        return False
    return a[3] == b[3] and a[4] == b[4]  # the CDNA version, what tokens stand for


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_sigkill_at_random_moments_through_every_operation(tmp_path: Path, durability: str) -> None:
    ops = operations(SEED)
    rng = np.random.default_rng(["full", "normal", "off"].index(durability))
    moments = sorted(rng.choice(np.arange(1, len(ops) - 1), KILLS, replace=False).tolist())
    for k in moments:
        path = tmp_path / f"store-{k}"
        acked = _run_and_kill(path, durability, k)
        assert acked >= k + 1
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a replay that diverges warns: fail on it
            eng = ng.Engine.open(path)
        got = _snapshot(eng)
        eng.close()

        ref = ng.Engine(**OPTIONS)
        for op in ops[:acked]:
            apply(ref, op)
        matches = _equal(got, _snapshot(ref))
        if not matches and acked < len(ops):  # the kill landed after a return, before its acknowledgement
            apply(ref, ops[acked])
            matches = _equal(got, _snapshot(ref))
        assert matches, f"{durability}: the store killed after {acked} acknowledged operations differs"
