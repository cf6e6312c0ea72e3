"""Child processes of the SIGKILL test: ingest into a store until killed.

Usage: ``python crash_child.py STORE``, then commands on stdin, one per line:

``run N``
    fork an ingesting child (run ``N`` seeds its data) and print ``pid <pid>``;
``reap P``
    wait for child ``P`` to be gone (the test killed it) and print ``dead <P>``: every line ``P`` printed
    comes before it.

This process imports neurograph once and forks the ingesting children from it (they need no import of
their own, which keeps 20 kills cheap); it never opens a store itself. ``NG_SLOW_FSYNC=<seconds>`` slows
every fsync of a snapshot, so that a kill aimed at a snapshot lands inside it.

An ingesting child continues the store (or creates it) and prints, *after* each call returned:

- ``e <token id> <vector as float32 hex>`` for each row of an ``emit`` / ``emit_batch``;
- ``c <cdna version>`` after a CDNA update;
- ``open`` once the store is open, ``snap start`` / ``snap end`` around each snapshot.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

import neurograph as ng
from neurograph.persist import is_store

CHAT = "signal.input.external.text.chat"
# novelty threshold far below the typical gap of uniform 8-D points: every signal makes a new token, whose
# position is then exactly its vector; the wider neighbour radius still links tokens by edges
CDNA = ng.CDNA(novelty_threshold=0.01, neighbor_radius=0.35)


def say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def ingest(path: str, run: int) -> None:
    bus = ng.EventBus()
    bus.subscribe("store.snapshot.started", lambda e: say("snap start\n"))
    bus.subscribe("store.snapshot.saved", lambda e: say("snap end\n"))
    eng = ng.Engine(path=path, cdna=None if is_store(path) else CDNA, bus=bus, snapshot_every=200)
    say("open\n")
    rng = np.random.default_rng(run)
    while True:
        roll = rng.random()
        if roll < 0.6:
            v = rng.uniform(-1, 1, 8).astype(np.float32)
            r = eng.emit(CHAT, v)
            say(f"e {r.token_id} {v.tobytes().hex()}\n")
        elif roll < 0.97:
            x = rng.uniform(-1, 1, (int(rng.integers(2, 40)), 8)).astype(np.float32)
            b = eng.emit_batch(CHAT, x)
            say("".join(f"e {i} {v.tobytes().hex()}\n" for i, v in zip(b.token_ids.tolist(), x)))
        else:
            say(f"c {eng.update_cdna(learning_rate=float(rng.uniform(0.05, 0.2))).version}\n")


def main(path: str) -> None:
    slow = float(os.environ.get("NG_SLOW_FSYNC", "0"))
    if slow:
        fsync = os.fsync

        def slow_fsync(fd: int) -> None:
            time.sleep(slow)
            fsync(fd)

        os.fsync = slow_fsync
    say("ready\n")
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "run":
            pid = os.fork()
            if pid == 0:
                try:
                    ingest(path, int(arg))
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(1)
            say(f"pid {pid}\n")
        elif cmd == "reap":
            os.waitpid(int(arg), 0)
            say(f"dead {arg}\n")


if __name__ == "__main__":
    main(sys.argv[1])
