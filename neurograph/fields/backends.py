"""Dynamics backends, selected by name: one step and one finalize per backend, same arithmetic.

``reference``
    Eager torch, forces by autograd of the potential (:mod:`neurograph.fields.reference`): the oracle.
``eager``
    The analytic dense gather forces (:mod:`neurograph.fields.forces`) in eager torch, any device.
``compiled``
    The same dense gather step under ``torch.compile`` (``dynamic=False``, one graph for the step and one
    for the finalize). Only capacity-shaped tensors go in, so inserting tokens under capacity never
    recompiles; a capacity doubling, a wider neighbour list or a new device compiles once more.
``triton``
    One fused Triton kernel per step on CUDA (:mod:`neurograph.kernels.force_step`): gather the
    neighbour rows, forces in registers, reduce, integrate, write out of place (runs on CPU tensors under
    ``TRITON_INTERPRET=1``, for tests).

``auto`` picks ``triton`` on CUDA when triton is importable (else ``compiled``) and ``eager`` on the CPU,
where ``compiled`` pays a compile of tens of seconds before it is faster (choose it for long runs on
large systems: it is several times faster per step).

Every backend implements the fused form of :func:`~neurograph.fields.integrate.leapfrog_step`: a step
evaluates ``F(x_n)`` once, completes the previous step and advances this one; ``finalize`` completes the
last step and returns the potential and kinetic energy. Both take the state ``(pos, vel, ctl)``, one
:class:`~neurograph.kernels.StepInputs` (everything else the step reads, packed by
:func:`~neurograph.fields.system.pack_inputs`; the backends with ``dense`` set read its spring tables)
and the noise. Langevin noise comes from the engine's generator (``torch.randn`` per step for the torch
backends; one seed per call for the kernel's Philox stream), so the noise is reproducible with the seed.

Determinism (the same state, inputs and generator state, on the same device and software): ``triton``
gives bit-identical results (every sum in a fixed order, the parent reaction included; tested bit for
bit on a GPU and, under the interpreter, with the programs run in reverse order), and so does ``eager``
on the CPU (tested). Elsewhere the torch backends inherit PyTorch's determinism: ``eager`` and
``compiled`` on CUDA add the parent reaction with ``index_add``, which uses float atomics there, so once
tokens have parents two runs agree to float rounding only (``torch.use_deterministic_algorithms(True)``
makes ``eager``'s deterministic); ``reference`` (autograd's scatter-adds) and ``compiled`` are not
promised bit for bit either.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from neurograph.fields.forces import gather_forces
from neurograph.fields.integrate import leapfrog_step
from neurograph.fields.reference import reference_forces
from neurograph.kernels import StepInputs, triton_available

__all__ = ["BACKENDS", "dense_finalize", "dense_step", "make_backend", "resolve_backend"]

BACKENDS = ("reference", "eager", "compiled", "triton")


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The backend ``name`` stands for on ``device`` (``"auto"`` resolved; unknown names refused).

    Raises:
        ValueError: an unknown name, or ``triton`` where it cannot run.
    """
    dev = torch.device(device)
    if name == "auto":
        if dev.type == "cuda":
            return "triton" if triton_available() else "compiled"
        return "eager"
    if name not in BACKENDS:
        raise ValueError(f"dynamics backend must be 'auto' or one of {list(BACKENDS)}; got {name!r}")
    if name == "triton" and not triton_available():
        raise ValueError("dynamics backend 'triton' needs triton and CUDA (or TRITON_INTERPRET=1 on CPU)")
    return name


def dense_step(
    pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """One fused step with the dense gather forces (what ``eager`` runs and ``compiled`` compiles).

    Args:
        pos, vel: ``[C, 8]`` positions and half-step velocities; ctl: ``[3]`` control vector.
        inp: the step's other tensors, with the dense spring tables (:class:`StepInputs`).
        noise: ``[C, 8]`` standard normal, or ``None`` (``T = 0``).

    Returns:
        ``(pos [C, 8], vel [C, 8], ctl [3])``.
    """
    force, _ = gather_forces(pos, inp)
    x, u, ctl, _ = leapfrog_step(pos, vel, ctl, force, inp, noise)
    return x, u, ctl


def dense_finalize(
    pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Complete the last step (arguments of :func:`dense_step`).

    Returns:
        ``(vel [C, 8] at integer time, potential, kinetic)``, the energies 0-d.
    """
    force, energy = gather_forces(pos, inp)
    _, u, _, kinetic = leapfrog_step(pos, vel, ctl, force, inp, noise, True)
    return u, energy.sum(), kinetic


class TorchBackend:
    """``reference``, ``eager`` or ``compiled``: the fused step in torch (see the module docstring)."""

    dense = True  # reads the [C, D] spring tables

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "compiled":
            self._step: Any = torch.compile(dense_step, dynamic=False, fullgraph=True)
            self._finalize: Any = torch.compile(dense_finalize, dynamic=False, fullgraph=True)
        else:
            self._step, self._finalize = dense_step, dense_finalize

    def step(self, pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Tensor | None) -> tuple:
        """One step: ``(pos, vel, ctl)``."""
        if self.name == "reference":
            x, u, ctl, _ = self._reference(pos, vel, ctl, inp, noise, finalize=False)
            return x, u, ctl
        return self._step(pos, vel, ctl, inp, noise)

    def finalize(self, pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Tensor | None) -> tuple:
        """Complete the last step: ``(vel, potential, kinetic)``."""
        if self.name == "reference":
            _, u, energy, kinetic = self._reference(pos, vel, ctl, inp, noise, finalize=True)
            return u, energy, kinetic
        return self._finalize(pos, vel, ctl, inp, noise)

    @staticmethod
    def _reference(
        pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Any, finalize: bool
    ) -> tuple:
        """The fused step with autograd forces: ``(pos, vel, ctl or energy, kinetic)``."""
        force, energy = reference_forces(pos, inp)
        x, u, ctl, kinetic = leapfrog_step(pos, vel, ctl, force, inp, noise, finalize)
        return x, u, (energy if finalize else ctl), kinetic

    def begin(self, generator: torch.Generator, temperature: float, has_parents: bool) -> None:
        """Start a call (nothing to prepare: the noise is drawn per step)."""

    def noise(self, like: Tensor, generator: torch.Generator, temperature: float) -> Tensor | None:
        """Standard normal ``[C, 8]`` for one step (``None`` at ``T = 0``)."""
        if temperature <= 0:
            return None
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def __repr__(self) -> str:
        return f"TorchBackend({self.name!r})"


class TritonBackend:
    """``triton``: one fused kernel per step (:func:`neurograph.kernels.force_step.force_step_triton`).

    Writes out of place into buffers it owns, never into a tensor it reads; rotates three control
    buffers so that each launch zeroes the one the next launch accumulates into (no extra launch per
    step). The Langevin noise is the kernel's Philox stream keyed by a per-call seed drawn from the
    engine's generator and the step number. The parent reaction is summed by each parent over its
    children in the CSR order of the inputs (``StepInputs.child_order`` / ``child_start``, built once by
    :func:`~neurograph.fields.system.pack_inputs`), not with float atomics: the steps are deterministic.
    """

    dense = False

    def __init__(self) -> None:
        self.name = "triton"
        self._key: tuple | None = None
        self._seed = 0
        self._counter = 0
        self._parents = False
        self._checked: StepInputs | None = None

    def _alloc(self, pos: Tensor) -> None:
        key = (tuple(pos.shape), pos.device)
        if key != self._key:
            self._key = key
            self._pos = [torch.empty_like(pos) for _ in range(2)]
            self._vel = [torch.empty_like(pos) for _ in range(3)]
            self._ctl = [torch.zeros(3, dtype=torch.float32, device=pos.device) for _ in range(3)]
            self._clean = [True, True, True]  # entry 0 of the control buffer is 0

    @staticmethod
    def _other(bufs: list[Tensor], *avoid: Tensor) -> int:
        ptrs = {a.data_ptr() for a in avoid}
        return next(i for i, b in enumerate(bufs) if b.data_ptr() not in ptrs)

    def begin(self, generator: torch.Generator, temperature: float, has_parents: bool) -> None:
        """Start a call: draw its Philox seed (one host transfer) and note whether parents exist."""
        if temperature > 0:
            self._seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        self._counter = 0
        self._parents = has_parents
        self._checked = None

    def _launch(
        self, pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Any, finalize: bool
    ) -> tuple:
        from neurograph.kernels.force_step import force_step_triton  # lazy: triton is optional

        self._alloc(pos)
        x_out = self._pos[self._other(self._pos, pos)]
        u_out = self._vel[self._other(self._vel, vel, self._vel[2])] if not finalize else self._vel[2]
        ptrs = [b.data_ptr() for b in self._ctl]
        free = [i for i, p in enumerate(ptrs) if p != ctl.data_ptr()]
        out = next(i for i in free if self._clean[i]) if not finalize else free[0]
        reset = next(i for i in free if i != out)
        self._counter += 1
        result = force_step_triton(
            pos, vel, ctl, inp, x_out, u_out, self._ctl[out], self._ctl[reset],
            seed=(self._seed << 32) | (self._counter & 0xFFFFFFFF), noise=noise is not None,
            finalize=finalize, parents=self._parents,
            check=inp is not self._checked,  # validate once per set of inputs, not once per step
        )  # fmt: skip
        self._checked = inp
        if not finalize:
            self._clean[out], self._clean[reset] = False, True
        return result

    def step(self, pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Any) -> tuple:
        """One step: ``(pos, vel, ctl)`` (views of the backend's buffers)."""
        x, u, ctl, _ = self._launch(pos, vel, ctl, inp, noise, False)
        return x, u, ctl

    def finalize(self, pos: Tensor, vel: Tensor, ctl: Tensor, inp: StepInputs, noise: Any) -> tuple:
        """Complete the last step: ``(vel, potential, kinetic)``."""
        _, u, _, energy = self._launch(pos, vel, ctl, inp, noise, True)
        return u, energy[0], energy[1]

    def noise(self, like: Tensor, generator: torch.Generator, temperature: float) -> bool | None:
        """The kernel draws its own noise: a truthy marker (``None`` at ``T = 0``)."""
        return True if temperature > 0 else None

    def __repr__(self) -> str:
        return "TritonBackend()"


def make_backend(name: str) -> TorchBackend | TritonBackend:
    """A backend object by (resolved) name."""
    return TritonBackend() if name == "triton" else TorchBackend(name)
