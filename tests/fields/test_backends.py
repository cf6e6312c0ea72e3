"""Backends agree with the reference: eager and compiled on the CPU, the fused Triton kernel through the
Triton interpreter (in a subprocess: ``TRITON_INTERPRET=1`` must be set before triton is imported) and
on a CUDA GPU (tests marked ``gpu``)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from neurograph.cdna import CDNA
from neurograph.fields import BACKENDS, Dynamics, resolve_backend
from neurograph.fields.backends import dense_finalize, dense_step
from neurograph.kernels.force_step import force_step_triton
from tests.fields.systems import make_case, random_stores, thermal_samples

REPO = Path(__file__).resolve().parents[2]


def _run(backend: str, steps: int = 40, cdna: CDNA | None = None, device: str = "cpu", seed: int = 21):
    tokens, edges = random_stores(50, seed=seed, capacity=64, device=device)
    dyn = Dynamics(backend, device, check_every=8)
    stats = dyn.run(tokens, edges, cdna or CDNA(skin=0.03), steps, torch.Generator(device).manual_seed(0))
    return tokens, stats, dyn


def test_backend_names() -> None:
    assert BACKENDS == ("reference", "eager", "compiled", "triton")
    assert resolve_backend("auto", "cpu") == "eager"
    assert resolve_backend("compiled", "cpu") == "compiled"
    with pytest.raises(ValueError, match="'warp'"):
        resolve_backend("warp", "cpu")
    with pytest.raises(ValueError, match="check_every"):
        Dynamics("eager", check_every=0)


def test_eager_agrees_with_the_autograd_reference() -> None:
    ref, ref_stats, ref_dyn = _run("reference")
    eager, stats, dyn = _run("eager")
    assert ref_dyn.rebuilds == dyn.rebuilds > 1  # the skin broke on the way, in both
    torch.testing.assert_close(eager.pos, ref.pos, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eager.vel, ref.vel, rtol=1e-3, atol=1e-4)
    assert stats.total_energy == pytest.approx(ref_stats.total_energy, rel=1e-4)


@pytest.mark.slow
def test_compiled_agrees_with_eager_and_does_not_recompile_on_insertion() -> None:
    from torch._dynamo.utils import counters

    eager, stats, _ = _run("eager")
    compiled, c_stats, dyn = _run("compiled")
    torch.testing.assert_close(compiled.pos, eager.pos, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled.vel, eager.vel, rtol=1e-3, atol=1e-4)
    assert c_stats.total_energy == pytest.approx(stats.total_energy, rel=1e-4)
    # insert tokens under capacity (64): the list is rebuilt, nothing is compiled again
    tokens, edges = random_stores(30, seed=22, capacity=64)
    dyn.run(tokens, edges, CDNA(skin=0.03), 3, torch.Generator())
    graphs = counters["stats"]["unique_graphs"]
    rng = np.random.default_rng(0)
    tokens.append(20, 0, pos=rng.uniform(-0.2, 0.2, (20, 8)).astype(np.float32), mass=1.0, radius=0.05)
    rebuilds = dyn.rebuilds
    dyn.run(tokens, edges, CDNA(skin=0.03), 3, torch.Generator())
    assert dyn.rebuilds > rebuilds  # the list saw the new tokens
    assert counters["stats"]["unique_graphs"] == graphs


def test_force_step_triton_checks_its_arguments() -> None:
    case = make_case(seed=23)
    inp = case.inputs
    pos = case.tokens.pos
    state = (pos, case.tokens.vel, torch.zeros(3))
    outs = [torch.empty_like(pos), torch.empty_like(pos), torch.zeros(3), torch.zeros(3)]
    with pytest.raises(ValueError, match="nbr must be"):
        force_step_triton(*state, replace(inp, nbr=case.nbr.long()), *outs)
    with pytest.raises(ValueError, match="pos_out must not alias pos"):
        force_step_triton(*state, inp, pos, *outs[1:])
    with pytest.raises(ValueError, match="coef must be"):
        force_step_triton(*state, replace(inp, coef=inp.coef[:4]), *outs)
    with pytest.raises(TypeError, match="StepInputs"):
        force_step_triton(*state, (inp.nbr, inp.attr), *outs)
    with pytest.raises(ValueError, match=r"StepInputs.child_order must be a \[128\] torch.int32"):
        force_step_triton(*state, inp, *outs, parents=True)  # dense inputs: no children in CSR form
    kernel = case.kernel_inputs
    with pytest.raises(ValueError, match=r"StepInputs.child_start must be a \[129\] torch.int32"):
        force_step_triton(*state, replace(kernel, child_start=kernel.child_start[:-1]), *outs, parents=True)


# ----------------------------------------------------------------------------------------------------
# The fused kernel under the Triton interpreter

_INTERPRETER_SCRIPT = r"""
import sys, traceback
import torch
from neurograph.cdna import CDNA
from neurograph.fields import Dynamics
from neurograph.fields.backends import TritonBackend, dense_finalize, dense_step
from tests.fields.systems import make_case, random_stores, thermal_samples

out = {}

def guarded(name, fn):
    try:
        out[name] = fn()
    except Exception:
        out[name] = traceback.format_exc()

def one_step(done, disp=0.0, parents=True, degree=4, **kwargs):
    case = make_case(seed=31, parents=parents, degree=degree, **kwargs)
    ctl = torch.tensor([disp, float(done), 0.0])
    x, u = case.tokens.pos, case.tokens.vel
    want = dense_step(x, u, ctl, case.inputs, None)
    be = TritonBackend()
    be.begin(torch.Generator(), 0.0, has_parents=parents)
    got = be.step(x, u, ctl, case.kernel_inputs, None)
    return [t.clone() for t in got], list(want)

def finalize():
    case = make_case(seed=32)
    ctl = torch.tensor([0.0, 3.0, 0.0])
    x, u = case.tokens.pos, case.tokens.vel
    want = dense_finalize(x, u, ctl, case.inputs, None)
    be = TritonBackend()
    be.begin(torch.Generator(), 0.0, has_parents=True)
    got = be.finalize(x, u, ctl, case.kernel_inputs, None)
    return [t.clone() for t in got], list(want)

def program_order(reverse):
    # one step and a finalize with many children per parent (3 parents, children in all 8 programs),
    # the interpreter running the programs in order or in reverse (a GPU runs them in any order)
    from triton.runtime import interpreter
    builder = interpreter.interpreter_builder
    set_idx, seen = builder.set_grid_idx, []
    def remapped(x, y, z):
        x = builder.grid_dim[0] - 1 - x if reverse else x
        seen.append(x)
        set_idx(x, y, z)
    case = make_case(seed=35, n=200, capacity=256, hubs=3, capacity_k=64)
    inp = case.kernel_inputs
    ctl = torch.tensor([0.0, 1.0, 0.0])
    be = TritonBackend()
    be.begin(torch.Generator(), 0.0, has_parents=True)
    builder.set_grid_idx = remapped
    try:
        x, u, ctl = (t.clone() for t in be.step(case.tokens.pos, case.tokens.vel, ctl, inp, None))
        v, pot, kin = (t.clone() for t in be.finalize(x, u, ctl, inp, None))
    finally:
        del builder.set_grid_idx
    assert seen[:2] == ([7, 6] if reverse else [0, 1]), seen[:8]
    return x, u, ctl, v, pot, kin

def runs(backend, temperature=0.0, seed=0):
    tokens, edges = random_stores(40, seed=33, capacity=64)
    dyn = Dynamics(backend, check_every=4)
    cdna = CDNA(skin=0.03, temperature=temperature)
    stats = dyn.run(tokens, edges, cdna, 24, torch.Generator().manual_seed(seed), every=12)
    return tokens.pos.clone(), tokens.vel.clone(), stats.total_energy, dyn.rebuilds

guarded("step", lambda: one_step(done=2))
guarded("first-step", lambda: one_step(done=0))
guarded("gated", lambda: one_step(done=2, disp=1.0))
guarded("no-parents-no-edges", lambda: one_step(done=1, parents=False, degree=0))
guarded("many-springs", lambda: one_step(done=1, degree=14))
guarded("many-children", lambda: one_step(done=1, n=200, capacity=256, hubs=3, capacity_k=64))
guarded("finalize", finalize)
guarded("run-eager", lambda: runs("eager"))
guarded("run-triton", lambda: runs("triton"))
guarded("noise-a", lambda: runs("triton", 0.05, seed=1))
guarded("noise-b", lambda: runs("triton", 0.05, seed=1))
guarded("noise-c", lambda: runs("triton", 0.05, seed=2))
guarded("order-forward", lambda: program_order(False))
guarded("order-reversed", lambda: program_order(True))
guarded("temperature", lambda: thermal_samples("triton"))
torch.save(out, sys.argv[1])
"""


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("triton")
    out = tmp_path_factory.mktemp("force_step_interpreter") / "out.pt"
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _INTERPRETER_SCRIPT, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return torch.load(out)


@pytest.mark.parametrize(
    "name", ["step", "first-step", "gated", "no-parents-no-edges", "many-springs", "many-children"]
)
def test_fused_step_matches_the_dense_step(interpreted: dict, name: str) -> None:
    result = interpreted[name]
    assert not isinstance(result, str), result
    (x, u, ctl), (x_want, u_want, ctl_want) = result
    torch.testing.assert_close(x, x_want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(u, u_want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ctl, ctl_want, rtol=1e-5, atol=1e-7)
    if name == "gated":  # a stale list: nothing moves, the step is not counted
        assert ctl[1] == 2


def test_fused_finalize_matches_the_dense_finalize(interpreted: dict) -> None:
    result = interpreted["finalize"]
    assert not isinstance(result, str), result
    (u, pot, kin), (u_want, pot_want, kin_want) = result
    torch.testing.assert_close(u, u_want, rtol=1e-4, atol=1e-6)
    assert float(pot) == pytest.approx(float(pot_want), rel=1e-5)
    assert float(kin) == pytest.approx(float(kin_want), rel=1e-5)


def test_triton_runs_like_eager_with_rebuilds(interpreted: dict) -> None:
    for name in ("run-eager", "run-triton"):
        assert not isinstance(interpreted[name], str), interpreted[name]
    pos, vel, energy, rebuilds = interpreted["run-triton"]
    pos_e, vel_e, energy_e, rebuilds_e = interpreted["run-eager"]
    assert rebuilds == rebuilds_e > 1
    torch.testing.assert_close(pos, pos_e, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(vel, vel_e, rtol=1e-3, atol=1e-4)
    assert energy == pytest.approx(energy_e, rel=1e-4)


def test_triton_noise_is_reproducible_with_the_seed(interpreted: dict) -> None:
    a, b, c = (interpreted[f"noise-{x}"] for x in "abc")
    for r in (a, b, c):
        assert not isinstance(r, str), r
        assert torch.isfinite(r[0]).all()
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], interpreted["run-triton"][0])


def test_fused_step_does_not_depend_on_the_order_programs_run(interpreted: dict) -> None:
    """Each parent sums its children's reaction itself, in CSR order, so running the programs in reverse
    (a GPU schedules them in any order) changes no bit. Children adding into their parent's row with
    float atomics, in the order their programs run, failed this."""
    forward, reversed_ = interpreted["order-forward"], interpreted["order-reversed"]
    for r in (forward, reversed_):
        assert not isinstance(r, str), r
    for name, a, b in zip(("pos", "vel", "ctl", "vel-final", "potential", "kinetic"), forward, reversed_):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("backend", ["eager", "triton"])
def test_langevin_noise_reaches_the_temperature_in_a_small_system(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Free tokens settle at m <v_a^2> = T (k_B = 1), for the torch backends' noise and the kernel's
    Philox noise alike, and for every mass (the noise scales as 1/sqrt(m))."""
    if backend == "triton":
        result = request.getfixturevalue("interpreted")["temperature"]
        assert not isinstance(result, str), result
    else:
        result = thermal_samples(backend)
    samples, mass = result
    temperature = 0.02
    assert samples.shape[0] >= 8  # records after the burn-in
    assert samples.mean().item() == pytest.approx(temperature, rel=0.1)
    assert len(mass.unique()) == 4
    for m in mass.unique():
        per_mass = samples[:, mass == m].mean().item()
        assert per_mass == pytest.approx(temperature, rel=0.25), f"mass {float(m)}"


# ----------------------------------------------------------------------------------------------------
# On a CUDA GPU


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["eager", "compiled", "triton"])
def test_cuda_backends_agree_with_the_cpu_reference(backend: str) -> None:
    if backend == "triton":
        pytest.importorskip("triton")
    ref, ref_stats, _ = _run("reference")
    got, stats, _ = _run(backend, device="cuda")
    torch.testing.assert_close(got.pos.cpu(), ref.pos, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.vel.cpu(), ref.vel, rtol=1e-3, atol=1e-4)
    assert stats.total_energy == pytest.approx(ref_stats.total_energy, rel=1e-4)


@pytest.mark.gpu
def test_cuda_fused_step_matches_dense_step_at_scale() -> None:
    pytest.importorskip("triton")
    from neurograph.fields.backends import TritonBackend

    case = make_case(n=3000, capacity=4096, seed=34, spread=0.4, device="cuda", capacity_k=64)
    inp = case.inputs
    ctl = torch.tensor([0.0, 1.0, 0.0], device="cuda")
    want = dense_step(case.tokens.pos, case.tokens.vel, ctl, inp, None)
    kernel = case.kernel_inputs
    be = TritonBackend()
    be.begin(torch.Generator("cuda"), 0.0, has_parents=True)
    got = be.step(case.tokens.pos, case.tokens.vel, ctl, kernel, None)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    v, pot, kin = be.finalize(got[0], got[1], got[2], kernel, None)
    v_want, pot_want, kin_want = dense_finalize(*want, inp, None)
    torch.testing.assert_close(v, v_want, rtol=1e-4, atol=1e-5)
    assert float(pot) == pytest.approx(float(pot_want), rel=1e-4)
    assert float(kin) == pytest.approx(float(kin_want), rel=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("temperature", [0.0, 0.05])
def test_cuda_triton_steps_are_bit_for_bit_deterministic(temperature: float) -> None:
    """The same Triton steps twice from the same state, with parents (after ``hierarchy()``: thousands
    of children, many per parent), give the same bits; the parent reaction used to be float atomics."""
    pytest.importorskip("triton")
    import neurograph as ng
    from neurograph.datasets import blobs_8d

    x, _ = blobs_8d(n=4000, centers=8, seed=5)
    eng = ng.Engine(device="cuda", dynamics="triton", capacity=4096)
    eng.add_tokens(x)
    eng.hierarchy()
    tokens, edges = eng.token_state, eng.edge_state
    children = torch.bincount(tokens.parent[tokens.parent >= 0])
    assert children.max() > 100  # many children add into one parent
    cdna = replace(eng.cdna, temperature=temperature)
    start = tokens.pos.clone(), tokens.vel.clone()
    runs = []
    for _ in range(2):
        tokens.pos.copy_(start[0])
        tokens.vel.copy_(start[1])
        dyn = Dynamics("triton", "cuda")
        stats = dyn.run(tokens, edges, cdna, 60, torch.Generator("cuda").manual_seed(1), every=30)
        runs.append((tokens.pos.clone(), tokens.vel.clone(), stats.total_energy))
    assert not torch.equal(runs[0][0], start[0])  # it moved
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
