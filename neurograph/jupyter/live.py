"""Live output in a notebook: the kernel's loop, a coalesced event log, and cell handlers.

Engine events are published in the thread that did the work: the kernel's main thread for a cell that
calls ``eng.emit``, the engine's worker for ``await eng.call(...)``. Output sent from another thread gets
lost under ipykernel 7, so everything here is drawn on the thread that runs the kernel's asyncio loop:
:class:`LoopCaller` hops there (``call_soon_threadsafe``) and coalesces redraws to at most one per
``min_interval`` seconds (10 Hz by default). Without a running loop (a plain IPython shell, a script) the
redraw happens in the calling thread, and what is left pending is drawn after the cell ends.

- :class:`EventLog`: the events of a subscription in one display area of the cell that subscribed,
  newest at the bottom, the last ``cap`` kept (``%neurograph subscribe``).
- :class:`CellHandler`: a cell's code run for each event with ``event`` bound (``%%signal``); a failing
  handler prints its traceback once and never breaks the emit that published the event.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from neurograph.display import events_html

__all__ = ["CellHandler", "EventLog", "LoopCaller", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running in this thread (the kernel's, in a Jupyter cell), or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopCaller:
    """Calls a redraw function on the thread of the loop it was made on, at most once per interval.

    ``request()`` may be called from any thread, any number of times: the redraw runs once for all
    the requests that arrived within ``min_interval`` seconds of the last redraw.

    Args:
        redraw: the function to call (no arguments), always on the home thread.
        min_interval: seconds between two redraws (0.1: at most 10 a second).
    """

    def __init__(self, redraw: Callable[[], Any], min_interval: float = 0.1) -> None:
        self.redraw = redraw
        self.min_interval = float(min_interval)
        self.loop = running_loop()
        self.thread = threading.get_ident()  # the home thread: the loop's, or the creator's
        self.pending = False  # a request not drawn yet
        self.redraws = 0
        self._scheduled = False
        self._last = -float("inf")
        self._lock = threading.Lock()

    def request(self) -> None:
        """Ask for a redraw (thread-safe, cheap)."""
        with self._lock:
            self.pending = True
        if threading.get_ident() != self.thread:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._on_home)
                return
            if self.loop is not None:  # the loop is gone: nothing left to draw on
                return
        self._on_home()

    def _on_home(self) -> None:
        if self._scheduled:
            return
        wait = self._last + self.min_interval - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self.loop is not None and not self.loop.is_closed():
            self._scheduled = True
            self.loop.call_later(wait, self._later)
        # no loop: the request stays pending until the next request or flush_pending()

    def _later(self) -> None:
        self._scheduled = False
        if self.pending:
            self.flush()

    def flush(self) -> None:
        """Redraw now (home thread only)."""
        with self._lock:
            self.pending = False
        self._last = time.monotonic()
        self.redraws += 1
        self.redraw()

    def flush_pending(self) -> None:
        """Redraw if a request is pending (the extension calls it after each cell)."""
        if self.pending and not self._scheduled:
            self.flush()


class EventLog:
    """The events of a subscription, shown live in one display area, newest at the bottom.

    Args:
        title: the caption (e.g. ``"subscription 3: signal.input.*"``).
        cap: events kept and shown (the oldest are dropped; ``total`` counts them all).
        min_interval: seconds between two redraws.
    """

    def __init__(self, title: str, cap: int = 20, min_interval: float = 0.1) -> None:
        self.title = title
        self.cap = int(cap)
        self.events: deque[Any] = deque(maxlen=self.cap)
        self.total = 0
        self._lock = threading.Lock()
        self.caller = LoopCaller(self._redraw, min_interval)
        self._handle: Any = None

    def show(self) -> None:
        """Open the display area in the current cell's output."""
        from IPython.display import HTML, display

        self._handle = display(HTML(self.html()), display_id=True)

    def __call__(self, event: Any) -> None:
        """The subscription's callback: keep the event and ask for a redraw."""
        with self._lock:
            self.events.append(event)
            self.total += 1
        self.caller.request()

    def html(self) -> str:
        """The table as shown now."""
        with self._lock:
            events, total = list(self.events), self.total
        caption = f"{self.title}: {total} event(s)"
        if total > len(events):
            caption += f", last {len(events)} shown"
        return events_html(events, caption, max_rows=self.cap)

    def _redraw(self) -> None:
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self.html()))


class CellHandler:
    """A cell's code run once per event, with ``event`` bound (``%%signal``).

    The code runs with the user's namespace as globals and ``{"event": event}`` as locals: it reads
    and mutates the user's objects (``seen.append(event)``); a plain assignment stays local unless
    declared ``global``. A failure prints the traceback once (to stderr, on the kernel's loop thread)
    and is counted in ``errors``; the engine's emit is never affected.

    Args:
        code: the cell's source.
        namespace: the user namespace (``shell.user_ns``).
        name: a name for tracebacks (``"<%%signal 3>"``).
    """

    def __init__(self, code: str, namespace: Mapping[str, Any], name: str) -> None:
        self.source = code
        self.name = name
        self.code = compile(code, name, "exec")  # a SyntaxError surfaces when the cell registers
        self.namespace = namespace
        self.calls = 0
        self.errors = 0
        self.caller: LoopCaller | None = None  # set when the handler is registered (the home thread)
        self._report: str | None = None

    def __call__(self, event: Any) -> None:
        self.calls += 1
        try:
            exec(self.code, self.namespace, {"event": event})
        except Exception as exc:
            self.errors += 1
            if self.errors == 1:
                tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip this frame
                lines = traceback.format_exception(type(exc), exc, tb)
                self._report = (
                    f"{self.name} failed on {event.event_type} (shown once; later failures are only "
                    f"counted in .errors):\n" + "".join(lines)
                )
                if self.caller is not None:
                    self.caller.request()
                else:
                    self.print_report()

    def print_report(self) -> None:
        """Print the first failure's traceback (once)."""
        if self._report is not None:
            report, self._report = self._report, None
            print(report, file=sys.stderr, end="")
