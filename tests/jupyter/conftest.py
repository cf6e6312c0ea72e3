"""Fixtures of the notebook tests: a real IPython shell with the extension loaded, and a comm that
counts what widgets send (the ``comm`` package's own hook for frontends, ``comm.create_comm``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import neurograph as ng

pytest.importorskip("IPython", reason="the jupyter extra is not installed (pip install -e .[jupyter])")

CHAT = "signal.input.external.text.chat"


@pytest.fixture(scope="module")
def engine() -> ng.Engine:
    """An engine with structure: three groups of signals and their hierarchy."""
    eng = ng.Engine(seed=0)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.6, 0.6, (3, 8))
    eng.emit_batch(CHAT, (centres[rng.integers(0, 3, 240)] + rng.normal(0, 0.03, (240, 8))).clip(-1, 1))
    eng.hierarchy()
    return eng


@pytest.fixture
def shell() -> Iterator[Any]:
    """The process's ``InteractiveShell`` with ``%load_ext neurograph.jupyter``; engines and
    subscriptions made by a test are dropped after it."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "neurograph.jupyter")
    yield ip
    magics = ip.magics_manager.registry["NeurographMagics"]
    magics.close()
    if magics.engine is not None:
        magics.engine.close()
    magics.engine = None
    for name in ("eng", "_"):
        ip.user_ns.pop(name, None)


class Sent:
    """Comm messages sent by widgets: ``(msg_type, data)`` in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []

    def updates(self) -> list[dict[str, Any]]:
        """The state updates (``method == "update"``): one dict of changed traits each."""
        return [
            d["state"]
            for t, d in self.messages
            if t == "comm_msg" and isinstance(d, dict) and d.get("method") == "update"
        ]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every comm message widgets send from now on (no frontend: the messages are only recorded)."""
    comm = pytest.importorskip("comm")
    from comm.base_comm import BaseComm

    record = Sent()

    class CountingComm(BaseComm):  # a frontend that records instead of sending over a kernel socket
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            record.messages.append((msg_type, data))

    monkeypatch.setattr(comm, "create_comm", lambda *args, **kwargs: CountingComm(*args, **kwargs))
    return record
