"""The integrator and the driver: energy never rises without noise, CDNA bounds hold, reproducible noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurograph.cdna import CDNA
from neurograph.fields import Dynamics, StepStats, Verlet, gather_forces, pack_inputs
from neurograph.fields.backends import dense_finalize, dense_step
from tests.fields.systems import make_case, random_stores

# Tolerance of "never rises": float32 rounding of the energy sums, a few ulp of the starting energy.
RISE_TOL = 2e-6
UNCAPPED = {"max_force": 1e4, "max_speed": 100.0}  # caps that do not bind (checked along the trajectory)


def _energies(tokens, edges, cdna, steps: int, check_caps: bool = False) -> np.ndarray:
    """Total energy before the first step and after every step."""
    dyn = Dynamics("eager")
    gen = torch.Generator().manual_seed(0)
    energies = [dyn.run(tokens, edges, cdna, 0, gen).total_energy]

    def record(stats: StepStats) -> None:
        energies.append(stats.total_energy)
        if check_caps:
            nl = dyn.neighbor_list
            force, _ = gather_forces(tokens.pos, pack_inputs(tokens, edges, cdna, nl.idx, nl.pos0))
            assert force.norm(dim=1).max() < cdna.max_force, (
                "the force cap bound: the test needs a larger one"
            )
            assert tokens.vel.norm(dim=1).max() < cdna.max_speed

    dyn.run(tokens, edges, cdna, steps, gen, every=1, on_stats=record)
    return np.array(energies)


SCALED = (1.0, 0.5, 2.0, 1.0, 1.5, 1.0, 0.8, 1.2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spread", "cdna"),
    [
        pytest.param(0.2, CDNA(**UNCAPPED), id="default"),
        pytest.param(0.2, CDNA(damping=0.3, axis_scale=SCALED, **UNCAPPED), id="weak-damping-scaled-axes"),
        pytest.param(0.12, CDNA(damping=3.0, **UNCAPPED), id="crowded-strong-damping"),
    ],
)
def test_total_energy_never_rises_without_noise(spread: float, cdna: CDNA) -> None:
    """T = 0, damping > 0: over 1,000 steps no step raises the total energy by more than RISE_TOL |E_0|."""
    tokens, edges = random_stores(60, seed=11, spread=spread, capacity=64)
    energy = _energies(tokens, edges, cdna, 1000, check_caps=True)
    rise = np.diff(energy)
    assert (rise <= RISE_TOL * abs(energy[0])).all(), f"largest rise {rise.max():.3e} (E0 = {energy[0]:.4f})"
    assert energy[-1] < 0.5 * energy[0]  # and it really dissipates


def test_capped_dynamics_still_dissipates() -> None:
    """With binding caps a step is not the gradient flow (a capped force does less work than the energy
    change), so single steps may gain energy; the run as a whole still loses most of it."""
    tokens, edges = random_stores(60, seed=11, spread=0.08, capacity=64)
    energy = _energies(tokens, edges, CDNA(damping=0.3), 300)
    assert energy[-1] < 0.2 * energy[0]


def test_every_cdna_bound_holds_after_steps() -> None:
    box = CDNA(axis_min=(-0.25,) * 8, axis_max=(0.25,) * 8, temperature=0.5, max_speed=0.6, damping=0.2)
    tokens, edges = random_stores(60, seed=12, spread=0.25, capacity=64)
    tokens.vel[: tokens.count] *= 40  # fast tokens hit the walls and the speed cap
    dead = ~tokens.alive[: tokens.count]
    dead_pos, dead_vel = tokens.pos[: tokens.count][dead].clone(), tokens.vel[: tokens.count][dead].clone()
    dyn = Dynamics("eager")
    dyn.run(tokens, edges, box, 200, torch.Generator().manual_seed(0), every=50)
    pos, vel = tokens.pos[: tokens.count], tokens.vel[: tokens.count]
    alive = tokens.alive[: tokens.count]
    assert (pos[alive] >= -0.25).all() and (pos[alive] <= 0.25).all()
    assert (pos[alive].abs() == 0.25).any()  # the walls were reached
    assert (vel[alive].norm(dim=1) <= 0.6 * (1 + 1e-5)).all()
    torch.testing.assert_close(pos[dead], dead_pos, rtol=0, atol=0)  # dead tokens never move
    torch.testing.assert_close(vel[dead], dead_vel, rtol=0, atol=0)


def test_the_force_cap_bounds_the_kick() -> None:
    cdna = CDNA(max_force=2.0, damping=0.0, repulsion_k=1000.0)
    tokens, edges = random_stores(50, seed=13, spread=0.05, capacity=64, dead=0)
    tokens.vel.zero_()
    case = make_case(cdna, seed=13, spread=0.05, capacity=64, dead=0, capacity_k=64)
    force, _ = gather_forces(case.tokens.pos, case.inputs)
    assert force.norm(dim=1).max() > 50 * cdna.max_force  # the uncapped forces are far above the cap
    Dynamics("eager").run(tokens, edges, cdna, 1, torch.Generator())
    n = tokens.count
    bound = cdna.dt * cdna.max_force / tokens.mass[:n]  # two half kicks of at most max_force
    assert (tokens.vel[:n].norm(dim=1) <= bound * (1 + 1e-5)).all()


def test_velocity_verlet_and_the_fused_form_give_the_same_trajectory() -> None:
    case = make_case(CDNA(damping=0.5, skin=2.0), seed=14, dead=0, capacity_k=64)  # the list holds throughout
    inp = case.inputs

    def force_fn(x: torch.Tensor) -> torch.Tensor:
        return gather_forces(x, inp)[0]

    verlet = Verlet.from_cdna(case.cdna)
    state = verlet.init_fn(case.tokens.pos.clone(), force_fn, case.tokens.vel.clone())
    x, u = case.tokens.pos.clone(), case.tokens.vel.clone()
    ctl = torch.zeros(3)
    for _ in range(25):
        state = verlet.step_fn(state, force_fn, inp.mass, inp.alive)
        x, u, ctl = dense_step(x, u, ctl, inp, None)
    v, _, _ = dense_finalize(x, u, ctl, inp, None)
    assert ctl[1] == 25
    torch.testing.assert_close(x, state.pos, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v, state.vel, rtol=1e-4, atol=1e-6)


def test_langevin_noise_reaches_the_temperature() -> None:
    """Free tokens (no edges, no overlaps) settle at m <v_a^2> = T on every axis (k_B = 1)."""
    cdna = CDNA(temperature=0.02, damping=2.0, axis_min=(-50.0,) * 8, axis_max=(50.0,) * 8, skin=0.5)
    tokens, edges = random_stores(400, seed=15, spread=20.0, capacity=512, degree=0, dead=0, parents=False)
    tokens.radius.fill_(0.01)
    tokens.vel.zero_()
    Dynamics("eager").run(tokens, edges, cdna, 300, torch.Generator().manual_seed(0))
    n = tokens.count
    mv2 = (tokens.mass[:n, None] * tokens.vel[:n] ** 2).mean().item()
    assert mv2 == pytest.approx(cdna.temperature, rel=0.1)


def test_runs_are_reproducible_with_the_seed() -> None:
    cdna = CDNA(temperature=0.05)
    out = []
    for seed in (0, 0, 1):
        tokens, edges = random_stores(40, seed=16, capacity=64)
        Dynamics("eager").run(tokens, edges, cdna, 30, torch.Generator().manual_seed(seed))
        out.append(tokens.pos.clone())
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    assert not torch.equal(out[0], out[2])


def test_stats_report_what_happened() -> None:
    tokens, edges = random_stores(40, seed=17, capacity=64)
    dyn = Dynamics("eager")
    records: list[StepStats] = []
    start = tokens.pos.clone()
    stats = dyn.run(tokens, edges, CDNA(), 30, torch.Generator(), every=10, on_stats=records.append)
    assert [r.steps for r in records] == [10, 10, 10] and stats.steps == 30 and dyn.steps == 30
    assert stats.total_energy == pytest.approx(stats.potential + stats.kinetic)
    assert stats.total_energy == records[-1].total_energy and stats.tokens == tokens.n_alive
    moved = (tokens.pos - start).norm(dim=1)[tokens.alive].max().item()
    assert stats.max_displacement == pytest.approx(moved, rel=1e-5)
    assert stats.rebuilds >= 1 and stats.wall_time > 0 and stats.backend == "eager"
    assert set(stats.to_dict()) >= {"potential", "kinetic", "total_energy", "max_displacement", "rebuilds"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": -1}, "steps"), ({"steps": 1.5}, "steps"), ({"steps": 5, "every": 0}, "every")],
)
def test_bad_arguments_are_refused_and_change_nothing(kwargs: dict, match: str) -> None:
    tokens, edges = random_stores(20, seed=18, capacity=32)
    before = tokens.pos.clone()
    with pytest.raises(ValueError, match=match):
        Dynamics("eager").run(tokens, edges, CDNA(), generator=torch.Generator(), **kwargs)
    assert torch.equal(tokens.pos, before)
