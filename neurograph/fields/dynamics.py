"""The dynamics driver: runs a backend's steps on an engine's stores, keeps the neighbour list honest.

:class:`Dynamics` is the stateful part of the force field (like :class:`~neurograph.neighbors.NeighborIndex`
is for search): it holds the backend, the neighbour list and counters, and advances the token positions
and velocities of a :class:`~neurograph.state.TokenState` in place. ``Engine.step`` / ``Engine.run`` call it.

One call of :meth:`Dynamics.run` (``steps`` steps, a stats record every ``every`` steps):

1. check that the neighbour list still describes the tokens (same slots in use, same alive tokens per
   level, no larger radius; one host transfer). Otherwise, or when the CDNA's metric or skin changed,
   rebuild it. Positions moved since (e.g. by ``emit``) are folded into the tracked displacement on the
   device, so the steps themselves notice when the list no longer holds. Then pack the step's inputs
   (:class:`~neurograph.kernels.StepInputs`: attributes, edge tables, the list, constants and box from
   the CDNA; :func:`~neurograph.fields.system.pack_inputs`);
2. launch the steps, reading the control vector every K steps (``check_every``, fewer when the measured
   displacement rate says the skin will soon be used up; one host sync per check). A step that finds
   the list stale leaves everything unchanged, so the steps after a break are no-ops until the check:
   then the list is rebuilt (its capacity doubled on overflow) and the remaining steps run;
3. every ``every`` steps, finalize (velocities back at integer time, energies) and read the statistics in
   one host transfer: a :class:`StepStats`, handed to ``on_stats`` (the engine publishes it as a
   ``metrics`` event). The last check and the statistics share that transfer when the list held.

Positions and velocities are written back into the store after each stats record. Runs are
reproducible for a fixed seed, sequence of calls, backend and device (the call structure decides when
the neighbour list is rebuilt, which changes nothing in exact arithmetic but rounds differently): bit for
bit with ``triton`` and with ``eager`` on the CPU, to float rounding with the torch backends on CUDA once
tokens have parents (``index_add`` there uses float atomics; :mod:`neurograph.fields.backends`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from neurograph import display
from neurograph.fields.backends import make_backend, resolve_backend
from neurograph.fields.integrate import CTL_DISP, CTL_DONE, CTL_OVERFLOW
from neurograph.fields.neighbor_list import NeighborList, NeighborListFn
from neurograph.fields.system import StepInputs, pack_inputs
from neurograph.state import EdgeState, TokenState

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Dynamics", "StepStats"]


@dataclass(frozen=True)
class StepStats:
    """What a stretch of dynamics did (floats in the units of the potential and the metric)."""

    steps: int  # steps integrated
    potential: float  # potential energy at the end
    kinetic: float  # kinetic energy sum 1/2 m |v|^2 at the end
    total_energy: float  # potential + kinetic
    max_displacement: float  # largest distance (weighted metric) any token moved over the stretch
    rebuilds: int  # neighbour-list rebuilds during the stretch
    tokens: int  # alive tokens
    wall_time: float  # seconds
    backend: str  # the dynamics backend that ran

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (the payload of the engine's ``dynamics.stepped`` event)."""
        return asdict(self)

    def to_pandas(self) -> pd.DataFrame:
        """One row, a column per field."""
        return display.step_stats_frame(self)

    def _repr_html_(self) -> str:
        return display.step_stats_html(self)


class Dynamics:
    """Force-field dynamics on a token store (see the module docstring).

    Args:
        backend: ``"auto"``, ``"reference"``, ``"eager"``, ``"compiled"`` or ``"triton"``
            (:mod:`neurograph.fields.backends`).
        device: the store's device (decides what ``"auto"`` means).
        check_every: K, the most steps between two reads of the control vector.
        capacity: initial candidates per token of the neighbour list (doubles on overflow).

    Raises:
        ValueError: an unknown backend, or ``check_every`` / ``capacity`` below 1.
    """

    def __init__(
        self,
        backend: str = "auto",
        device: torch.device | str = "cpu",
        *,
        check_every: int = 16,
        capacity: int = 16,
    ) -> None:
        for name, value in (("check_every", check_every), ("capacity", capacity)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        self.backend_name = resolve_backend(backend, device)
        self.backend = make_backend(self.backend_name)
        self.check_every = check_every
        self.capacity = capacity
        self.neighbor_list: NeighborList | None = None
        self.steps = 0  # steps integrated so far
        self.rebuilds = 0  # neighbour-list rebuilds so far
        self._metric: tuple | None = None  # (axis_scale, skin) the list was built for
        self._rate = 0.0  # measured displacement per step (sets the check interval)
        self._disp = 0.0  # largest displacement since the rebuild, as last read

    def invalidate(self) -> None:
        """Forget the neighbour list (rebuilt before the next step). Call after editing the stores in ways
        the checks cannot see (e.g. moving tokens between levels without changing how many are alive)."""
        self.neighbor_list = None

    def __repr__(self) -> str:
        return (
            f"Dynamics(backend={self.backend_name!r}, steps={self.steps}, rebuilds={self.rebuilds}, "
            f"check_every={self.check_every}, neighbor_list={self.neighbor_list!r})"
        )

    # --- the public loop ------------------------------------------------------------------------------
    def run(
        self,
        tokens: TokenState,
        edges: EdgeState,
        cdna: Any,
        steps: int,
        generator: torch.Generator,
        *,
        every: int | None = None,
        on_stats: Callable[[StepStats], None] | None = None,
        progress: bool = False,
    ) -> StepStats:
        """Advance ``steps`` steps; a :class:`StepStats` every ``every`` steps (default: once, at the end).

        Args:
            tokens, edges: the stores (positions and velocities are updated in place).
            cdna: the constitution in force (constants, caps, box, metric, skin).
            steps: number of steps, ``>= 0`` (0 only measures the energies).
            generator: the engine's torch generator (Langevin noise).
            every: steps between two stats records (and ``on_stats`` calls), ``>= 1``.
            on_stats: called with each record.
            progress: show a ``tqdm.auto`` progress bar (silent with ``TQDM_DISABLE=1``).

        Returns:
            The summary of the call: energies at the end, largest displacement from the start, steps,
            rebuilds and wall time.

        Raises:
            ValueError: ``steps`` or ``every`` malformed (nothing changes).
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0; got {steps!r}")
        every = max(steps, 1) if every is None else every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1; got {every!r}")
        t0 = time.perf_counter()
        rebuilds0 = self.rebuilds
        bar = _progress(steps) if progress else None
        with torch.no_grad():
            inp = self._prepare(tokens, edges, cdna)
            start = tokens.pos.clone() if steps > every else None
            done = 0
            while True:
                chunk = min(every, steps - done)
                inp, last = self._chunk(tokens, cdna, inp, chunk, generator)
                done += chunk
                if bar is not None:
                    bar.update(chunk)
                if on_stats is not None and chunk:
                    on_stats(last)
                if done >= steps:
                    break
                if on_stats is not None:
                    inp = self._prepare(tokens, edges, cdna)  # the callback may have changed the stores
            disp = last.max_displacement
            if start is not None:  # several records: the displacement over the whole call, over the tokens
                n0 = start.shape[0]  # that existed at its start (slots are append-only; callbacks may grow)
                disp = float(_largest_move(tokens.pos[:n0], start, tokens.alive[:n0], inp.scale))
        if bar is not None:
            bar.close()
        return StepStats(
            steps=steps,
            potential=last.potential,
            kinetic=last.kinetic,
            total_energy=last.total_energy,
            max_displacement=disp,
            rebuilds=self.rebuilds - rebuilds0,
            tokens=tokens.n_alive,
            wall_time=time.perf_counter() - t0,
            backend=self.backend_name,
        )

    # --- one stretch between two stats records ------------------------------------------------------
    def _chunk(
        self, tokens: TokenState, cdna: Any, inp: StepInputs, n: int, gen: torch.Generator
    ) -> tuple[StepInputs, StepStats]:
        t0 = time.perf_counter()
        temperature = float(cdna.temperature)
        half_skin = 0.5 * float(cdna.skin)
        be = self.backend
        be.begin(gen, temperature, has_parents=not be.dense and bool((tokens.parent >= 0).any()))
        x, u = tokens.pos, tokens.vel
        start = x.clone()
        ctl = self._fresh_ctl(0)
        executed, since_rebuild, disp_seen, rebuilds0 = 0, 0, float(self._disp), self.rebuilds
        rebuilt = False
        while True:
            k = min(self._interval(disp_seen, half_skin), n - executed)
            for _ in range(k):
                x, u, ctl = be.step(x, u, ctl, inp, be.noise(x, gen, temperature))
            final = executed + k >= n
            if final:  # finalize speculatively: the check and the stats share one transfer
                v, pot, kin = be.finalize(x, u, ctl, inp, be.noise(x, gen, temperature))
                moved = _largest_move(x, start, tokens.alive, inp.scale)
                read = torch.stack(
                    [ctl[CTL_DISP], ctl[CTL_DONE], ctl[CTL_OVERFLOW], pot.float(), kin.float(), moved]
                )
                disp_seen, done, overflow, pot_, kin_, moved_ = read.tolist()
            else:
                disp_seen, done, overflow = ctl.tolist()  # a check: one host transfer every K steps
            since_rebuild += int(done) - executed
            executed = int(done)
            if since_rebuild > 0:
                self._rate = disp_seen / since_rebuild
            holds = disp_seen <= half_skin and overflow == 0
            if final and holds and executed == n:
                break
            if not holds:  # rebuild at the current positions (they are valid), keep the steps done
                if rebuilt and since_rebuild == 0 and overflow == 0:
                    raise RuntimeError(
                        f"dynamics made no progress after a neighbour-list rebuild (largest displacement "
                        f"{disp_seen}): are some positions not finite?"
                    )
                rebuilt = True
                inp = self._rebuild(tokens, x, inp, grow=overflow != 0)
                ctl = self._fresh_ctl(executed)
                since_rebuild, disp_seen = 0, 0.0
        tokens.pos.copy_(x)
        tokens.vel.copy_(v)
        self._disp = disp_seen
        self.neighbor_list.ctl[CTL_DISP] = disp_seen  # type: ignore[union-attr]
        self.steps += n
        return inp, StepStats(
            steps=n,
            potential=pot_,
            kinetic=kin_,
            total_energy=pot_ + kin_,
            max_displacement=moved_,
            rebuilds=self.rebuilds - rebuilds0,
            tokens=tokens.n_alive,
            wall_time=time.perf_counter() - t0,
            backend=self.backend_name,
        )

    def _fresh_ctl(self, done: int) -> Tensor:
        """The list's control vector with the steps-done counter set (no host sync)."""
        ctl = self.neighbor_list.ctl.clone()  # type: ignore[union-attr]
        ctl[CTL_DONE] = float(done)
        return ctl

    def _interval(self, disp: float, half_skin: float) -> int:
        """Steps until the next check: ``check_every``, fewer when the measured displacement rate says the
        skin will be used up sooner (at least 1)."""
        if self._rate <= 0:
            return self.check_every
        return max(1, min(self.check_every, int((half_skin - disp) / self._rate)))

    # --- preparation and rebuilds -------------------------------------------------------------------
    def _prepare(self, tokens: TokenState, edges: EdgeState, cdna: Any) -> StepInputs:
        """Make sure the neighbour list describes the tokens (rebuild if not), then pack the step inputs."""
        scale = torch.tensor(cdna.axis_scale, dtype=torch.float32, device=tokens.device)
        metric = (tuple(cdna.axis_scale), float(cdna.skin))
        nl = self.neighbor_list
        fn = NeighborListFn(skin=float(cdna.skin), capacity=nl.capacity if nl is not None else self.capacity)
        args = (tokens.radius, tokens.level, tokens.alive, tokens.count)
        if nl is None or metric != self._metric or not fn.still_covers(nl, *args):
            self._metric = metric
            self.neighbor_list = nl = fn.allocate(tokens.pos, *args, scale)
            self.rebuilds += 1
            self._rate, self._disp = 0.0, 0.0
        else:  # fold moves made outside the dynamics (emit) into the tracked displacement, on the device
            moved = _largest_move(tokens.pos, nl.pos0, tokens.alive, scale)
            nl.ctl[CTL_DISP] = torch.maximum(nl.ctl[CTL_DISP], moved)
        return pack_inputs(tokens, edges, cdna, nl.idx, nl.pos0, dense=self.backend.dense)

    def _rebuild(self, tokens: TokenState, pos: Tensor, inp: StepInputs, grow: bool) -> StepInputs:
        nl = self.neighbor_list
        assert nl is not None
        fn = NeighborListFn(skin=nl.skin, capacity=nl.capacity)
        args = (tokens.radius, tokens.level, tokens.alive, tokens.count, inp.scale)
        self.neighbor_list = nl = fn.update(nl, pos, *args, grow=grow)
        self.rebuilds += 1
        return inp.with_neighbors(nl.idx, nl.pos0)


def _largest_move(pos: Tensor, ref: Tensor, alive: Tensor, scale: Tensor) -> Tensor:
    """Largest weighted distance between ``pos`` and ``ref`` over alive rows (0-d tensor, no host sync).

    Shapes:
        pos, ref ``[C, 8]``, alive ``[C]``, scale ``[8]`` -> ``[]``.
    """
    diff = pos - ref
    d = (diff * diff * scale).sum(-1).sqrt()  # (C,)
    return torch.where(alive, d, torch.zeros_like(d)).max()


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm  # imported where used

    return tqdm(total=total, unit="step", desc="dynamics", leave=False, delay=1.0)  # only runs over 1 s
