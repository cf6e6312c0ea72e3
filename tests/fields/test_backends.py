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
from tests.fields.systems import make_case, random_stores

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


# ----------------------------------------------------------------------------------------------------
# The fused kernel under the Triton interpreter

_INTERPRETER_SCRIPT = r"""
import sys, traceback
import torch
from neurograph.cdna import CDNA
from neurograph.fields import Dynamics
from neurograph.fields.backends import TritonBackend, dense_finalize, dense_step
from tests.fields.systems import make_case, random_stores

out = {}

def guarded(name, fn):
    try:
        out[name] = fn()
    except Exception:
        out[name] = traceback.format_exc()

def one_step(done, disp=0.0, parents=True, degree=4):
    case = make_case(seed=31, parents=parents, degree=degree)
    inp = case.inputs
    ctl = torch.tensor([disp, float(done), 0.0])
    x, u = case.tokens.pos, case.tokens.vel
    want = dense_step(x, u, ctl, inp, None)
    be = TritonBackend()
    be.begin(torch.Generator(), 0.0, has_parents=parents)
    got = be.step(x, u, ctl, inp, None)
    return [t.clone() for t in got], list(want)

def finalize():
    case = make_case(seed=32)
    inp = case.inputs
    ctl = torch.tensor([0.0, 3.0, 0.0])
    x, u = case.tokens.pos, case.tokens.vel
    want = dense_finalize(x, u, ctl, inp, None)
    be = TritonBackend()
    be.begin(torch.Generator(), 0.0, has_parents=True)
    got = be.finalize(x, u, ctl, inp, None)
    return [t.clone() for t in got], list(want)

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
guarded("finalize", finalize)
guarded("run-eager", lambda: runs("eager"))
guarded("run-triton", lambda: runs("triton"))
guarded("noise-a", lambda: runs("triton", 0.05, seed=1))
guarded("noise-b", lambda: runs("triton", 0.05, seed=1))
guarded("noise-c", lambda: runs("triton", 0.05, seed=2))
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


@pytest.mark.parametrize("name", ["step", "first-step", "gated", "no-parents-no-edges", "many-springs"])
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
    be = TritonBackend()
    be.begin(torch.Generator("cuda"), 0.0, has_parents=True)
    got = be.step(case.tokens.pos, case.tokens.vel, ctl, inp, None)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    v, pot, kin = be.finalize(got[0], got[1], got[2], inp, None)
    v_want, pot_want, kin_want = dense_finalize(*want, inp, None)
    torch.testing.assert_close(v, v_want, rtol=1e-4, atol=1e-5)
    assert float(pot) == pytest.approx(float(pot_want), rel=1e-4)
    assert float(kin) == pytest.approx(float(kin_want), rel=1e-4)
