"""DESIGN §8's promise under SIGKILL: a signal whose ``emit`` returned is never lost.

Ingesting child processes (``crash_child.py``) write into one store with durability ``full`` and print
each token id (with its vector) after the call returned. The test kills them with SIGKILL at 20 random
moments — 7 of them right after a snapshot started, with fsync slowed so that the kill lands inside the
snapshot — and after every kill checks that SQLite's integrity check passes and that ``Engine.open`` holds
every id printed so far at its vector, with no damaged snapshot and no replay divergence. Each child
continues the store the killed one left, so the runs also cover opening after a crash (and some kills
land while a child is still opening).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import neurograph as ng
from neurograph.persist.store import LOG_FILE

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 20
IN_SNAPSHOT = 7  # kills aimed inside a snapshot
SLOW_FSYNC = 0.02  # seconds added to each fsync of a snapshot (file and directory): >= 40 ms per snapshot


class Forker:
    """The process that forks the ingesting children; its stdout lines are collected by a thread."""

    def __init__(self, store: Path, err: Path) -> None:
        env = dict(os.environ, NG_SLOW_FSYNC=str(SLOW_FSYNC), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        self.err = err.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by a kill was never fully printed
                self.lines.append(line[:-1])

    def wait_for(self, prefix: str, start: int, timeout: float = 60.0) -> int:
        """Index of the first line from ``start`` on that starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.lines)):
                if self.lines[i].startswith(prefix):
                    return i
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {prefix!r} line (forker exit code {self.proc.poll()})")
            time.sleep(0.001)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.thread.join()
        self.err.close()


def _check(store: Path, printed: dict[int, bytes], cdna_version: int) -> None:
    with sqlite3.connect(store / LOG_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged snapshot or a divergent replay would warn
        eng = ng.Engine.open(store)
    try:
        ids = np.fromiter(printed, np.int64, len(printed))
        slots = eng.token_state.slots_of(ids)
        assert (slots >= 0).all(), f"lost ids: {ids[slots < 0][:10]}"
        want = np.frombuffer(b"".join(printed.values()), np.float32).reshape(-1, 8)
        np.testing.assert_array_equal(eng.token_state.gather("pos", slots), want)
        assert eng.cdna.version >= cdna_version
    finally:
        eng.close()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks its ingesting children")
def test_sigkill_at_random_moments_loses_no_returned_emit(tmp_path):
    store = tmp_path / "store"
    rng = np.random.default_rng(6)
    aimed = set(rng.choice(np.arange(1, KILLS), IN_SNAPSHOT, replace=False).tolist())
    printed: dict[int, bytes] = {}
    version, inside = 1, 0
    forker = Forker(store, tmp_path / "forker.err")
    try:
        forker.wait_for("ready", 0)
        for run in range(KILLS):
            start = len(forker.lines)
            forker.send(f"run {run}")
            pid = int(forker.lines[forker.wait_for("pid ", start)].split()[1])
            if run in aimed:
                forker.wait_for("snap start", start)
                time.sleep(rng.uniform(0.0, SLOW_FSYNC))
            else:
                if run == 0:
                    forker.wait_for("open", start)  # the store exists before the first kill
                time.sleep(rng.uniform(0.01, 0.6))
            os.kill(pid, signal.SIGKILL)
            forker.send(f"reap {pid}")
            lines = forker.lines[start : forker.wait_for(f"dead {pid}", start)]
            snaps = [line for line in lines if line.startswith("snap")]
            inside += bool(snaps) and snaps[-1] == "snap start"
            for line in lines:
                if line.startswith("e "):
                    _, tid, hexvec = line.split()
                    printed[int(tid)] = bytes.fromhex(hexvec)
                elif line.startswith("c "):
                    version = max(version, int(line.split()[1]))
            _check(store, printed, version)
    finally:
        forker.close()
    assert len(printed) > 500
    assert inside >= IN_SNAPSHOT - 2, f"only {inside} kills landed inside a snapshot"
