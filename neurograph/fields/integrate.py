"""Damped, mass-aware velocity Verlet with an optional Langevin thermostat, speed and force caps and a box.

One step of length ``h = dt`` (masses ``m`` per token, forces ``F = -grad E`` capped at ``max_force``)::

    B  v <- v + (h/2) F(x) / m            half kick              then |v| <= max_speed
    A  x <- x + h v                        drift                  then x kept in the box
    B  v <- v + (h/2) F(x') / m            half kick with the new forces
    O  v <- c1 v + c2 xi                   friction and noise     then |v| <= max_speed

with ``c1 = exp(-damping h / m)`` (the CDNA's "velocity decays as exp(-gamma dt / m)": heavy tokens are
damped less) and ``c2 = sqrt((1 - c1^2) T / m)``, ``xi`` standard normal noise (Boltzmann constant 1,
so each axis of a token settles at ``m <v_a^2> = T``; ``T = 0`` switches the noise off). This is velocity
Verlet followed by the exact Ornstein-Uhlenbeck step of the friction ("BABO"); with ``T = 0`` and
``damping > 0`` it loses energy every step (up to the integrator's O(h^3) error, which the tests bound).

The box: a token that would leave it stops at the wall and the velocity component pointing out of the
box is set to zero. Caps are Euclidean norms of the 8-vectors in the token coordinates. They are
safety bounds: while they bind, the step is not the gradient flow of the energy (a capped force does
less work than the energy change), so they should rarely bind in a healthy system.

Two equivalent forms of the same arithmetic:

- :class:`Verlet` with ``init_fn`` / ``step_fn`` (JAX-MD style): the state carries ``(pos, vel, force)`` at
  integer times, one force evaluation per step. Pure, for experiments and tests.
- :func:`leapfrog_step`, the form every engine backend and the fused kernel compute: a step starts by
  evaluating ``F(x_n)`` and does the previous step's ``B O`` and this step's ``B A`` with it, so a step is
  one pass over the tokens (one kernel on a GPU) and forces are never stored. Velocities between such
  steps are half-step velocities; :func:`leapfrog_step` with ``finalize=True`` completes the last step
  (``B O``) and gives back integer-time velocities, which is what ``TokenState.vel`` holds between calls.
  ``ctl = (largest displacement since the neighbour-list rebuild, steps done, overflow)`` gates a step:
  while the neighbour list cannot be trusted the step leaves everything unchanged (no host sync needed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor

from neurograph.kernels.step_inputs import StepInputs
from neurograph.space import DIM

__all__ = [
    "COEF_DT",
    "Verlet",
    "VerletState",
    "cap_rows",
    "drift",
    "friction",
    "kick",
    "leapfrog_step",
    "thermostat",
]

# Columns of the coefficient tensor shared by the backends (ForceParams first, then the integrator's).
COEF_DT, COEF_DAMPING, COEF_TEMPERATURE, COEF_MAX_SPEED, COEF_MAX_FORCE, COEF_HALF_SKIN = range(4, 10)
CTL_DISP, CTL_DONE, CTL_OVERFLOW = 0, 1, 2  # entries of the control vector ctl [3]


def cap_rows(v: Tensor, limit: Tensor | float) -> Tensor:
    """Scale each row down to Euclidean norm ``<= limit`` (rows within the bound are unchanged).

    Shapes:
        v: ``[n, 8]`` -> ``[n, 8]``.
    """
    norm = (v * v).sum(-1, keepdim=True).sqrt()  # (n, 1)
    return torch.where(norm > limit, v * (limit / norm), v)


def kick(v: Tensor, force: Tensor, mass: Tensor, h: Tensor | float) -> Tensor:
    """``v + h F / m``.

    Shapes:
        v, force: ``[n, 8]``, mass: ``[n]`` -> ``[n, 8]``.
    """
    return v + h * force / mass[:, None]


def friction(mass: Tensor, dt: Tensor | float, damping: Tensor | float, temperature: Tensor | float) -> tuple:
    """Ornstein-Uhlenbeck coefficients ``c1 = exp(-damping dt / m)``, ``c2 = sqrt((1 - c1^2) T / m)``.

    Shapes:
        mass: ``[n]`` -> ``(c1 [n, 1], c2 [n, 1])``.
    """
    m = mass[:, None]
    c1 = torch.exp(-damping * dt / m)
    c2 = ((1.0 - c1 * c1).clamp_min(0.0) * temperature / m).sqrt()
    return c1, c2


def thermostat(v: Tensor, c1: Tensor, c2: Tensor, noise: Tensor | None) -> Tensor:
    """The O step ``c1 v + c2 xi`` (``noise = None``: no noise, ``T = 0``).

    Shapes:
        v: ``[n, 8]``, c1, c2: ``[n, 1]``, noise: ``[n, 8]`` -> ``[n, 8]``.
    """
    return c1 * v if noise is None else c1 * v + c2 * noise


def drift(pos: Tensor, v: Tensor, dt: Tensor | float, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """``x + dt v`` kept in the box ``[lo, hi]``; velocity components pointing out of it at a wall are zeroed.

    Shapes:
        pos, v: ``[n, 8]``, lo, hi: ``[8]`` -> ``(pos [n, 8], v [n, 8])``.
    """
    x = pos + dt * v
    out = ((x < lo) & (v < 0)) | ((x > hi) & (v > 0))  # (n, 8)
    return torch.minimum(torch.maximum(x, lo), hi), torch.where(out, torch.zeros_like(v), v)


class VerletState(NamedTuple):
    """State of :class:`Verlet`: positions, velocities and (capped) forces at the same time."""

    pos: Tensor  # (n, 8)
    vel: Tensor  # (n, 8)
    force: Tensor  # (n, 8)


@dataclass(frozen=True)
class Verlet:
    """The integrator as an ``init_fn`` / ``step_fn`` pair (see the module docstring for the step)."""

    dt: float = 0.01  # time step
    damping: float = 1.0  # friction gamma: velocity decays as exp(-gamma dt / m)
    temperature: float = 0.0  # Langevin temperature (0: deterministic)
    max_speed: float = 1.0  # speed cap per token
    max_force: float = 10.0  # force cap per token
    box_min: tuple[float, ...] = (-1.0,) * DIM  # lower corner of the box
    box_max: tuple[float, ...] = (1.0,) * DIM  # upper corner of the box

    @classmethod
    def from_cdna(cls, cdna: object) -> Verlet:
        """The CDNA's dynamics fields (``dt, damping, temperature, max_speed, max_force``, box)."""
        names = {f.name for f in fields(cls)} - {"box_min", "box_max"}
        kwargs = {name: float(getattr(cdna, name)) for name in names}
        return cls(**kwargs, box_min=tuple(cdna.axis_min), box_max=tuple(cdna.axis_max))  # type: ignore[attr-defined]

    def box(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(lo [8], hi [8])`` on the device and dtype of ``like``."""
        return (
            torch.tensor(self.box_min, dtype=like.dtype, device=like.device),
            torch.tensor(self.box_max, dtype=like.dtype, device=like.device),
        )

    def init_fn(
        self, pos: Tensor, force_fn: Callable[[Tensor], Tensor], vel: Tensor | None = None
    ) -> VerletState:
        """Initial state: positions kept in the box, ``vel`` (zero by default) capped, forces evaluated."""
        lo, hi = self.box(pos)
        pos = torch.minimum(torch.maximum(pos, lo), hi)
        vel = torch.zeros_like(pos) if vel is None else cap_rows(vel, self.max_speed)
        return VerletState(pos, vel, cap_rows(force_fn(pos), self.max_force))

    def step_fn(
        self,
        state: VerletState,
        force_fn: Callable[[Tensor], Tensor],
        mass: Tensor,
        alive: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> VerletState:
        """One step ``B A B O``; ``force_fn(pos) -> [n, 8]``; dead tokens (``alive`` False) keep their state.

        Shapes:
            mass: ``[n]``, alive: ``[n]`` bool, noise: ``[n, 8]`` standard normal (used when ``T > 0``).
        """
        h = self.dt
        lo, hi = self.box(state.pos)
        keep = torch.ones_like(mass, dtype=torch.bool) if alive is None else alive
        m = torch.where(keep, mass, torch.ones_like(mass))
        c1, c2 = friction(m, h, self.damping, self.temperature)
        v = cap_rows(kick(state.vel, state.force, m, 0.5 * h), self.max_speed)
        x, v = drift(state.pos, v, h, lo, hi)
        force = cap_rows(force_fn(x), self.max_force) * keep[:, None]
        v = cap_rows(
            thermostat(kick(v, force, m, 0.5 * h), c1, c2, noise if self.temperature > 0 else None),
            self.max_speed,
        )
        k = keep[:, None]
        return VerletState(torch.where(k, x, state.pos), torch.where(k, v, state.vel), force)


def leapfrog_step(
    pos: Tensor,
    vel: Tensor,
    ctl: Tensor,
    force: Tensor,
    inp: StepInputs,
    noise: Tensor | None,
    finalize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One step in the fused form, given the (uncapped) forces ``force = F(pos)``.

    Completes the previous step (``B O``, skipped when ``ctl`` says no step was done yet in this call:
    ``vel`` then already is an integer-time velocity), then, unless ``finalize``, does this step's ``B A``.
    A step runs only while ``ctl`` says the neighbour list holds (displacement ``<= skin/2``, no overflow);
    otherwise nothing changes and ``done`` does not count it.

    Args:
        pos, vel: ``[C, 8]`` positions and (half-step) velocities.
        ctl: ``[3]`` float32 ``(largest displacement since the rebuild, steps done, overflow flag)``.
        force: ``[C, 8]`` forces at ``pos``.
        inp: the step's other tensors (:class:`~neurograph.kernels.StepInputs`); read here: ``pos0
            [C, 8]`` (positions at the last neighbour-list rebuild), the masses and liveness of ``attr``,
            ``scale [8]``, ``coef [10]`` (``ForceParams`` then ``dt, damping, temperature, max_speed,
            max_force, skin/2``) and the box ``lo``, ``hi [8]``.
        noise: ``[C, 8]`` standard normal, or ``None`` (``T = 0``).
        finalize: complete the last step only (no drift), giving integer-time velocities.

    Returns:
        ``(pos, vel, ctl, kinetic)``: the new state, the new control vector and, with ``finalize``, the
        kinetic energy ``sum 1/2 m |v|^2`` of the completed velocities (0-d; zero otherwise).
    """
    mass, alive, scale, coef = inp.mass, inp.alive, inp.scale, inp.coef
    dt, damping, temperature = coef[COEF_DT], coef[COEF_DAMPING], coef[COEF_TEMPERATURE]
    vmax, fmax, half_skin = coef[COEF_MAX_SPEED], coef[COEF_MAX_FORCE], coef[COEF_HALF_SKIN]
    live = alive[:, None]  # (C, 1)
    m = torch.where(alive, mass, torch.ones_like(mass))  # (C,) dead slots: any positive mass
    f = torch.where(live, cap_rows(force, fmax), torch.zeros_like(force))  # (C, 8)
    c1, c2 = friction(m, dt, damping, temperature)  # (C, 1) each
    w = cap_rows(thermostat(kick(vel, f, m, 0.5 * dt), c1, c2, noise), vmax)  # (C, 8) v_n
    w = torch.where(ctl[CTL_DONE] > 0, w, vel)
    if finalize:
        kinetic = 0.5 * (m * torch.where(live, w * w, torch.zeros_like(w)).sum(-1)).sum()
        return pos, torch.where(live, w, vel), ctl, kinetic
    ok = (ctl[CTL_DISP] <= half_skin) & (ctl[CTL_OVERFLOW] == 0)  # 0-d: the neighbour list holds
    x, u = drift(pos, cap_rows(kick(w, f, m, 0.5 * dt), vmax), dt, inp.lo, inp.hi)
    move = live & ok  # (C, 1)
    x = torch.where(move, x, pos)
    u = torch.where(move, u, vel)
    diff = x - inp.pos0
    disp = torch.where(alive, (diff * diff * scale).sum(-1).sqrt(), torch.zeros_like(mass))  # (C,)
    new_ctl = torch.stack(
        [torch.maximum(ctl[CTL_DISP], disp.max()), ctl[CTL_DONE] + ok.to(ctl.dtype), ctl[CTL_OVERFLOW]]
    )
    return x, u, new_ctl, torch.zeros_like(ctl[CTL_DISP])
