"""The store keeps every engine option that shapes the state (DESIGN §8): ``Engine.open(path)``, exactly as
the README shows it, restores ``hierarchy_every`` and the dynamics backend without arguments, after a
SIGKILL in every durability mode; an argument that contradicts the store is a typed error.

The scenario is the one that lost ids before: a store with ``hierarchy_every=10``, 300 signals, ``run(10)``
(which builds fields), then an ``emit`` whose id was returned; the process is killed right after. The
reopened engine must hold that id and be the engine a reference (the same calls, in memory) holds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurograph as ng
from neurograph.errors import InvalidArgument, OptionMismatch, StoreError

CHAT = "signal.input.external.text.chat"

WORKLOAD = """
import os, signal, sys
import numpy as np
import neurograph as ng

def work(eng):
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.6, 0.6, (3, 8))
    x = (centres[rng.integers(0, 3, 300)] + rng.normal(0, 0.04, (300, 8))).astype(np.float32)
    eng.emit_batch("signal.input.external.text.chat", x[:200])
    for row in x[200:]:
        eng.emit("signal.input.external.text.chat", row)
    eng.run(10, every=5)
    return eng.emit("signal.input.external.text.chat", rng.uniform(-1, 1, 8)).token_id
"""


def _reference() -> ng.Engine:
    """The same calls on an engine in memory."""
    scope: dict = {}
    exec(textwrap.dedent(WORKLOAD), scope)
    eng = ng.Engine(seed=0, hierarchy_every=10)
    scope["work"](eng)
    return eng


def _kill_after_work(path: Path, durability: str) -> int:
    """Run the workload in a child process that SIGKILLs itself right after the last emit returned."""
    code = WORKLOAD + textwrap.dedent(
        f"""
        eng = ng.Engine(path={str(path)!r}, seed=0, hierarchy_every=10, durability={durability!r})
        tid = work(eng)
        print(tid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout.split()[-1])


def _same_tokens(a: ng.Engine, b: ng.Engine) -> None:
    ta, tb = a.tokens().reset_index(drop=True), b.tokens().reset_index(drop=True)
    pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_open_restores_hierarchy_every_after_sigkill(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "store"
    tid = _kill_after_work(path, durability)
    ref = _reference()
    assert len(ref.hierarchy(rebuild=False).fields(1)) >= 2, "the workload must build fields"

    eng = ng.Engine.open(path)  # exactly as the README shows it: no arguments
    try:
        assert eng.options == {"hierarchy_every": 10, "dynamics": "auto", "store_payloads": True}
        assert tid in set(eng.tokens()["id"])
        _same_tokens(eng, ref)
        pd.testing.assert_frame_equal(
            eng.hierarchy(rebuild=False).fields(1), ref.hierarchy(rebuild=False).fields(1), check_exact=False
        )
    finally:
        eng.close()


def test_an_option_that_contradicts_the_store_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with ng.Engine(path=path, hierarchy_every=10, dynamics="eager") as eng:
        eng.emit_batch(CHAT, np.random.default_rng(1).uniform(-1, 1, (50, 8)))
        before = eng.tokens()
    with pytest.raises(OptionMismatch, match="hierarchy_every") as info:
        ng.Engine.open(path, hierarchy_every=5)
    assert (info.value.field, info.value.stored, info.value.given) == ("hierarchy_every", 10, 5)
    assert isinstance(info.value, StoreError)
    with pytest.raises(OptionMismatch, match="dynamics"):
        ng.Engine.open(path, dynamics="reference")
    with ng.Engine.open(path, hierarchy_every=10) as eng:  # the same value is fine
        pd.testing.assert_frame_equal(eng.tokens(), before)
        assert eng.options == {"hierarchy_every": 10, "dynamics": "eager", "store_payloads": True}


def test_an_option_changed_after_creation_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with ng.Engine(path=path) as eng:
        assert eng.options == {"hierarchy_every": None, "dynamics": "auto", "store_payloads": True}
        eng.hierarchy_every = 25
    with ng.Engine.open(path) as eng:
        assert eng.hierarchy_every == 25
        eng.save()  # the option now travels in the snapshot too
        eng.hierarchy_every = None
    with ng.Engine.open(path) as eng:
        assert eng.hierarchy_every is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_a_malformed_hierarchy_every_is_a_typed_error(bad: object) -> None:
    eng = ng.Engine(hierarchy_every=4)
    with pytest.raises(InvalidArgument, match="hierarchy_every") as info:
        eng.hierarchy_every = bad
    assert info.value.field == "hierarchy_every" and info.value.value == bad
    assert eng.hierarchy_every == 4
