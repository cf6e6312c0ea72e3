"""A live panel of an engine in a notebook: token space, energy, novelty, hierarchy, last signals.

``Dashboard(engine)`` shows one plotly ``FigureWidget`` with four parts, and controls above it:

- *token space*: the tokens in 2-D (two chosen axes, or the first two principal components), level-0
  tokens coloured by their level-1 field (grey: in no field), field tokens as diamonds sized by mass,
  drawn with WebGL (``Scattergl``);
- *hierarchy*: a sunburst of the fields, sized by the level-0 tokens under them;
- *energy and novelty rate*: total energy after each stretch of dynamics, and the share of novel signals
  among those that arrived since the previous redraw;
- *last signals*: the newest signals with their token, novelty and anomaly score;
- controls: run / pause stepping, temperature and damping sliders (from 0, the CDNA's lower bound, to
  ten times the value in force or a working maximum; each change is ``engine.update_cdna``, so the CDNA
  validates it and it is logged), the projection and its two axes.

**How it updates.** Engine events (signals, ``dynamics.stepped``, ``field.*``, ``cdna.updated``) only
mark the panel dirty, from whatever thread published them. One asyncio task on the kernel's loop waits
for that mark, then takes a snapshot with ``await engine.call(...)`` (the engine's worker thread: the
loop never waits for the engine) and applies it in **one** ``fig.batch_update()``, i.e. one
``Plotly.update`` message however many events arrived. Redraws are at least ``min_interval`` seconds
apart (0.1 s: at most 10 a second) and at least twice the last snapshot's time apart, so the panel
never keeps the engine busy more than a third of the time. Stepping is another task on the same loop
(``await engine.call(engine.step, steps_per_tick)`` in a loop). No threads are started, as ipykernel 7
loses widget updates sent from other threads.

**Large engines.** At most ``max_points`` level-0 tokens are drawn (20,000 by default): past that, a
token is drawn when the fractional part of ``id * 0.618...`` (the golden ratio) is below
``max_points / n``: a uniform sample that depends only on the id, so the same tokens stay on screen
from one redraw to the next and newly drawn ones do not flicker. Field tokens are always drawn. PCA is
fitted on the drawn tokens. The sunburst keeps the ``max_fields`` largest level-1 fields (300). At 1e5
tokens a snapshot takes about 0.1 s on the worker; the kernel stays responsive throughout.

Built outside a running loop (a script), the panel draws once and then on :meth:`refresh`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from neurograph.engine import Engine
from neurograph.jupyter.live import running_loop
from neurograph.space import AXES

__all__ = ["Dashboard"]

_PALETTE = np.array(
    [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#17becf",
        "#bcbd22",
        "#393b79",
        "#ad494a",
        "#637939",
    ]
)
_NO_FIELD = "#c7c7c7"
_GOLDEN = 0.6180339887498949
_SIGNAL_COLS = ["time", "event type", "token", "novel", "anomaly"]
_CURVE = 500  # points kept per curve


class Dashboard:
    """A live panel of ``engine`` (module docstring). Display it by ending a cell with it.

    Args:
        engine: the engine to watch.
        min_interval: seconds between two redraws (0.1: at most 10 a second).
        max_points: level-0 tokens drawn at most (a stable sample past it).
        max_fields: level-1 fields in the sunburst at most (the largest).
        steps_per_tick: dynamics steps per engine call while running.
        signals: listen to signals (the *last signals* table and prompt redraws); each signal then
            builds its event payload in the engine (a few microseconds each).
        height: of the figure, in pixels.
        width: of the figure, in pixels.

    Attributes:
        fig: the ``plotly.graph_objects.FigureWidget``.
        widget: the whole panel (an ``ipywidgets.VBox``).
        flushes: redraws done (each one ``batch_update``).
        events: engine events received.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        min_interval: float = 0.1,
        max_points: int = 20_000,
        max_fields: int = 300,
        steps_per_tick: int = 10,
        signals: bool = True,
        height: int = 720,
        width: int = 960,
    ) -> None:
        import ipywidgets as w

        self.engine = engine
        self.min_interval = float(min_interval)
        self.max_points = int(max_points)
        self.max_fields = int(max_fields)
        self.steps_per_tick = int(steps_per_tick)
        self.flushes = 0
        self.events = 0
        self.snapshot_seconds = 0.0
        self.error: str | None = None
        self._loop = running_loop()
        self._thread = threading.get_ident()
        self._wake = asyncio.Event() if self._loop is not None else None
        self._lock = threading.Lock()
        self._signals: deque[Any] = deque(maxlen=8)
        self._energy: deque[tuple[float, float]] = deque(maxlen=_CURVE)
        self._novelty: deque[tuple[float, float]] = deque(maxlen=_CURVE)
        self._t0 = time.monotonic()
        self._counted = (0, 0)  # (signals, novel) at the last snapshot
        self._tasks: list[asyncio.Task[Any]] = []
        self._step_task: asyncio.Task[Any] | None = None
        self._closed = False

        cdna = engine.cdna
        self.run_button = w.ToggleButton(
            value=False, description="run", icon="play", tooltip="step the dynamics"
        )
        self.temperature = w.FloatSlider(
            value=cdna.temperature,
            min=0.0,
            max=max(0.1, 10 * cdna.temperature),
            step=1e-3,
            description="temperature",
            continuous_update=False,
            readout_format=".3g",
        )
        self.damping = w.FloatSlider(
            value=cdna.damping,
            min=0.0,
            max=max(10.0, 10 * cdna.damping),
            step=0.05,
            description="damping",
            continuous_update=False,
            readout_format=".3g",
        )
        self.projection = w.Dropdown(options=["axes", "pca"], value="axes", description="projection")
        self.x_axis = w.Dropdown(options=list(AXES), value=AXES[0], description="x")
        self.y_axis = w.Dropdown(options=list(AXES), value=AXES[1], description="y")
        self.status = w.HTML(value="")
        self.fig = self._figure(height, width)
        self.run_button.observe(self._on_run, "value")
        self.temperature.observe(self._on_slider, "value")
        self.damping.observe(self._on_slider, "value")
        for dd in (self.projection, self.x_axis, self.y_axis):
            dd.observe(lambda change: self.request(), "value")
        small = w.Layout(width="230px")
        for dd in (self.projection, self.x_axis, self.y_axis):
            dd.layout = small
        controls = w.VBox(
            [
                w.HBox([self.run_button, self.temperature, self.damping]),
                w.HBox([self.projection, self.x_axis, self.y_axis]),
                self.status,
            ]
        )
        self.widget = w.VBox([controls, self.fig])
        self.widget.add_class("neurograph-dashboard")

        self._apply(self._snapshot())  # the first picture, drawn now (before any event)
        channels = ["metrics", "status"] + (["signals"] if signals else [])
        self._subscription = engine.subscribe("*", self._on_event, channels=channels)
        if self._loop is not None:
            self._tasks.append(self._loop.create_task(self._redraw_loop()))

    # --- the figure ------------------------------------------------------------------------------------
    def _figure(self, height: int, width: int) -> Any:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(
            rows=2,
            cols=2,
            column_widths=[0.58, 0.42],
            row_heights=[0.62, 0.38],
            specs=[
                [{"type": "xy"}, {"type": "domain"}],
                [{"type": "xy", "secondary_y": True}, {"type": "domain"}],
            ],
            subplot_titles=("token space", "hierarchy", "energy and novelty rate", "last signals"),
            horizontal_spacing=0.08,
            vertical_spacing=0.1,
        )
        fig.add_trace(go.Scattergl(name="tokens", mode="markers", marker={"size": 5}), row=1, col=1)
        fig.add_trace(
            go.Scattergl(
                name="fields",
                mode="markers",
                marker={"symbol": "diamond", "line": {"width": 1, "color": "#333"}},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(go.Sunburst(name="hierarchy", branchvalues="total", maxdepth=3), row=1, col=2)
        fig.add_trace(go.Scatter(name="total energy", mode="lines"), row=2, col=1, secondary_y=False)
        fig.add_trace(go.Scatter(name="novelty rate", mode="lines+markers"), row=2, col=1, secondary_y=True)
        fig.add_trace(
            go.Table(
                header={"values": _SIGNAL_COLS, "align": "left"},
                cells={"values": [[] for _ in _SIGNAL_COLS], "align": "left"},
                columnwidth=[1.2, 1.8, 0.8, 0.7, 0.9],
            ),
            row=2,
            col=2,
        )
        fig.update_layout(
            height=height,
            width=width,
            template="plotly_white",
            showlegend=False,
            margin={"l": 40, "r": 20, "t": 90, "b": 30},
            title={"font": {"size": 13}, "x": 0.01},
            uirevision="neurograph",  # keep the user's zoom across redraws
        )
        fig.update_yaxes(title_text="energy", row=2, col=1, secondary_y=False)
        fig.update_yaxes(
            title_text="novel share", range=[0, 1.05], dtick=0.25, row=2, col=1, secondary_y=True
        )
        fig.update_xaxes(title_text="seconds", row=2, col=1)
        return go.FigureWidget(fig)

    # --- events: mark dirty, from any thread --------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        now = time.monotonic() - self._t0
        with self._lock:
            self.events += 1
            if event.channel == "signals":
                self._signals.append(event)
            elif event.event_type == "dynamics.stepped":
                self._energy.append((now, float(event.data.get("total_energy", np.nan))))
        self.request()

    def request(self) -> None:
        """Ask for a redraw (thread-safe; many requests within ``min_interval`` make one redraw)."""
        if self._wake is None or self._loop is None or self._closed:
            return
        if threading.get_ident() == self._thread:
            self._wake.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _redraw_loop(self) -> None:
        assert self._wake is not None and self._loop is not None
        last = -float("inf")
        while not self._closed:
            await self._wake.wait()
            gap = max(self.min_interval, 2 * self.snapshot_seconds)
            wait = last + gap - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # requests arriving meanwhile join this redraw
            self._wake.clear()
            try:
                snap = await self.engine.call(self._snapshot)
                self._apply(snap)
            except Exception as exc:  # a panel error must not kill the loop: show it and go on
                self.error = f"{type(exc).__name__}: {exc}"
                self.status.value = f"<span style='color:#b00'>redraw failed: {_escape(self.error)}</span>"
            last = self._loop.time()

    def refresh(self) -> None:
        """Redraw now, in this thread (for use without a running loop)."""
        self._apply(self._snapshot())

    # --- a snapshot, taken on the engine's worker -----------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        eng = self.engine
        tokens = eng.tokens()
        stats = eng.stats()
        snap = {"stats": stats, "cdna": eng.cdna, "repr": repr(eng)}
        snap.update(self._token_space(tokens))
        snap["sunburst"] = self._sunburst(tokens)
        signals, novel = stats["signals"], stats["novel"]
        ds, dn = signals - self._counted[0], novel - self._counted[1]
        self._counted = (signals, novel)
        if ds > 0:
            with self._lock:
                self._novelty.append((time.monotonic() - self._t0, dn / ds))
        self.snapshot_seconds = time.perf_counter() - t0
        return snap

    def _token_space(self, tokens: pd.DataFrame) -> dict[str, Any]:
        level = tokens["level"].to_numpy()
        ids = tokens["id"].to_numpy()
        base = level == 0
        n0 = int(base.sum())
        keep = base.copy()
        if n0 > self.max_points:  # a stable sample: depends only on the id (module docstring)
            keep &= np.modf(ids * _GOLDEN)[0] < self.max_points / n0
        pos = tokens[list(AXES)].to_numpy(np.float32)
        if self.projection.value == "pca":
            sample = pos[keep] if keep.any() else pos
            centre = sample.mean(0) if len(sample) else np.zeros(len(AXES), np.float32)
            if len(sample) >= 2:
                _, _, vt = np.linalg.svd(sample - centre, full_matrices=False)
                comps = vt[:2] * np.sign(vt[:2].sum(1, keepdims=True) + 1e-12)  # a fixed sign: no flips
            else:
                comps = np.eye(2, len(AXES), dtype=np.float32)
            xy = (pos - centre) @ comps.T
            labels = ("PC 1", "PC 2")
        else:
            ix, iy = AXES.index(self.x_axis.value), AXES.index(self.y_axis.value)
            xy = pos[:, [ix, iy]]
            labels = (self.x_axis.value, self.y_axis.value)
        parent = tokens["parent"].to_numpy()
        colour = np.where(parent[keep] >= 0, _PALETTE[np.abs(parent[keep]) % len(_PALETTE)], _NO_FIELD)
        fields = level >= 1
        mass = tokens["mass"].to_numpy()[fields]
        return {
            "tokens_xy": xy[keep],
            "tokens_colour": colour,
            "tokens_text": [f"token {i}" for i in ids[keep][:2000]] if keep.sum() <= 2000 else None,
            "fields_xy": xy[fields],
            "fields_colour": _PALETTE[ids[fields] % len(_PALETTE)],
            "fields_size": np.clip(6 + 3 * np.sqrt(mass), 8, 30),
            "fields_text": [f"field {i} (level {lv})" for i, lv in zip(ids[fields], level[fields])],
            "axis_labels": labels,
            "drawn": int(keep.sum()),
            "n0": n0,
        }

    def _sunburst(self, tokens: pd.DataFrame) -> dict[str, list[Any]]:
        level = tokens["level"].to_numpy()
        if not (level >= 1).any():
            return {"ids": [], "parents": [], "values": [], "labels": []}
        parent = tokens["parent"].to_numpy()
        ids = tokens["id"].to_numpy()
        value = pd.Series(0, index=ids, dtype=np.int64)
        counts = pd.Series(parent[(level == 0) & (parent >= 0)]).value_counts()
        value.loc[counts.index] = counts.to_numpy()
        for lv in range(2, int(level.max()) + 1):  # a field holds the tokens of the fields under it
            below = (level == lv - 1) & (parent >= 0)
            sums = pd.Series(value.loc[ids[below]].to_numpy(), index=parent[below]).groupby(level=0).sum()
            value.loc[sums.index] = sums.to_numpy()
        fields = tokens[level >= 1].assign(value=value.loc[ids[level >= 1]].to_numpy())
        lvl1 = fields[fields["level"] == 1].nlargest(self.max_fields, "value")
        kept = pd.concat([lvl1, fields[fields["level"] >= 2]])
        known = set(kept["id"].tolist())
        par = [f"f{p}" if p in known else "all" for p in kept["parent"].tolist()]
        total = int((level == 0).sum())
        return {
            "ids": ["all", *[f"f{i}" for i in kept["id"].tolist()]],
            "parents": ["", *par],
            "values": [total, *kept["value"].tolist()],  # fields at the root are disjoint: their sum <= total
            "labels": ["all tokens", *[f"field {i}" for i in kept["id"].tolist()]],
        }

    # --- applying a snapshot: one batch_update --------------------------------------------------------
    def _apply(self, snap: dict[str, Any]) -> None:
        with self._lock:
            signals = list(self._signals)
            energy = list(self._energy)
            novelty = list(self._novelty)
        rows = [_signal_row(ev) for ev in signals]
        table = [list(col) for col in zip(*rows)] if rows else [[] for _ in _SIGNAL_COLS]
        fig = self.fig
        with fig.batch_update():
            tok, fld, sun, en, nov, tab = fig.data
            tok.x, tok.y = snap["tokens_xy"][:, 0], snap["tokens_xy"][:, 1]
            tok.marker.color = snap["tokens_colour"]
            tok.text = snap["tokens_text"]
            fld.x, fld.y = snap["fields_xy"][:, 0], snap["fields_xy"][:, 1]
            fld.marker.color = snap["fields_colour"]
            fld.marker.size = snap["fields_size"]
            fld.text = snap["fields_text"]
            sun.ids, sun.parents = snap["sunburst"]["ids"], snap["sunburst"]["parents"]
            sun.values, sun.labels = snap["sunburst"]["values"], snap["sunburst"]["labels"]
            en.x, en.y = [t for t, _ in energy], [e for _, e in energy]
            nov.x, nov.y = [t for t, _ in novelty], [r for _, r in novelty]
            tab.cells.values = table
            fig.layout.xaxis.title.text, fig.layout.yaxis.title.text = snap["axis_labels"]
            stats = snap["stats"]
            fig.layout.title.text = (  # the status line travels in the same update
                f"{_escape(snap['repr'])}<br><sup>{snap['drawn']:,} of {snap['n0']:,} level-0 tokens drawn"
                f" · {stats['signals']:,} signals · redraw {self.flushes + 1}</sup>"
            )
        self.flushes += 1

    # --- controls ---------------------------------------------------------------------------------------
    def _on_run(self, change: dict[str, Any]) -> None:
        self.run_button.icon = "pause" if change["new"] else "play"
        self.run_button.description = "pause" if change["new"] else "run"
        if change["new"] and self._loop is not None and self._step_task is None:
            self._step_task = self._loop.create_task(self._stepping())

    async def _stepping(self) -> None:
        try:
            while self.run_button.value and not self._closed:
                await self.engine.call(self.engine.step, self.steps_per_tick)
                await asyncio.sleep(0)  # let redraws and the frontend's messages in
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>stepping stopped: {_escape(self.error)}</span>"
            self.run_button.value = False
        finally:
            self._step_task = None

    def _on_slider(self, change: dict[str, Any]) -> None:
        name = "temperature" if change["owner"] is self.temperature else "damping"
        if getattr(self.engine.cdna, name) == change["new"]:
            return
        if self._loop is None:
            self.engine.update_cdna(**{name: change["new"]})
            return
        self._tasks.append(self._loop.create_task(self._update_cdna(name, change["new"])))

    async def _update_cdna(self, name: str, value: float) -> None:
        try:
            await self.engine.call(self.engine.update_cdna, **{name: value})
        except Exception as exc:
            self.status.value = f"<span style='color:#b00'>{_escape(f'{type(exc).__name__}: {exc}')}</span>"

    def start(self) -> None:
        """Start stepping (the run button)."""
        self.run_button.value = True

    def pause(self) -> None:
        """Stop stepping after the current engine call."""
        self.run_button.value = False

    def close(self) -> None:
        """Stop stepping and redrawing, leave the engine's bus, close the widgets."""
        self._closed = True
        self.run_button.value = False
        self._subscription.close()
        for task in [*self._tasks, *([self._step_task] if self._step_task else [])]:
            task.cancel()
        if self._wake is not None:
            with contextlib.suppress(RuntimeError):
                self._wake.set()
        for widget in (self.fig, self.run_button, self.temperature, self.damping, self.projection):
            widget.close()
        for widget in (self.x_axis, self.y_axis, self.status, self.widget):
            widget.close()

    # --- display ----------------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return (
            f"Dashboard(engine={self.engine!r}, flushes={self.flushes}, events={self.events}, "
            f"running={self.run_button.value})"
        )


def _signal_row(event: Any) -> list[Any]:
    data = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
    short = ".".join(event.event_type.split(".")[-2:])
    return [
        stamp,
        short,
        data.get("token_id", ""),
        "yes" if data.get("is_novel") else "no",
        f"{float(data.get('anomaly_score', 0.0)):.2f}",
    ]


def _escape(text: str) -> str:
    import html

    return html.escape(text)
