"""One fused force-field step on the GPU: gather, forces in registers, reduce, integrate, write out of place.

:func:`force_step_triton` is the kernel behind the ``triton`` dynamics backend. Its plain reference is the
dense gather step of :mod:`neurograph.fields` (``fields.backends.dense_step`` /
``dense_finalize``: :func:`~neurograph.fields.forces.gather_forces` then
:func:`~neurograph.fields.integrate.leapfrog_step`), which computes the same sums in eager torch; the
tests compare the two (on CPU tensors through the Triton interpreter, and on a CUDA GPU). The algorithm
and the block sizes are explained in ``_force_step_triton.py``.

Nothing here syncs with the host: the checks below read shapes, dtypes and devices only.

Traffic per step and token, the floor the benchmark compares against (``k`` candidates, ``D`` learned
edges in use, int32 indices, every byte read once): the candidates' positions ``32 k`` and attributes
``16 k`` bytes and their indices ``4 k``; the token's own position, velocity and reference position read
(96), position and velocity written (64), its attributes (16), parent (8) and degree (4); per spring the
other end's position (32) and liveness (4), two table entries (8), weight and rest length (8). With
parents, every token reads its range of children (8) and each child costs its parent's row its index
(4) and position (32); :func:`force_step_bytes` leaves that out. Random gathers move whole 32-byte
sectors, so a kernel can at best approach this floor.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from neurograph.kernels.knn import triton_available
from neurograph.kernels.step_inputs import StepInputs

__all__ = ["force_step_bytes", "force_step_triton"]

_SHAPES = {  # name -> (trailing shape, dtype); leading dimension C unless noted
    "pos": ((8,), torch.float32),
    "vel": ((8,), torch.float32),
    "pos0": ((8,), torch.float32),
    "attr": ((4,), torch.float32),
    "parent": ((), torch.int64),
    "degree": ((), torch.int32),
    "pos_out": ((8,), torch.float32),
    "vel_out": ((8,), torch.float32),
}
_READ = (  # the fields of StepInputs the kernel reads (spring_w, spring_rest and the edge list are not)
    "nbr", "pos0", "attr", "parent", "edge_nbr", "edge_slot", "degree", "edge_weight", "edge_rest", "scale",
    "coef", "lo", "hi",
)  # fmt: skip
_CHILDREN = ("child_order", "child_start")  # read with parents=True


def force_step_triton(
    pos: Tensor,
    vel: Tensor,
    ctl: Tensor,
    inp: StepInputs,
    pos_out: Tensor,
    vel_out: Tensor,
    ctl_out: Tensor,
    ctl_reset: Tensor,
    *,
    seed: int = 0,
    noise: bool = False,
    finalize: bool = False,
    parents: bool = False,
    check: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """One step of :func:`~neurograph.fields.integrate.leapfrog_step` with the forces of
    :func:`~neurograph.fields.forces.gather_forces`, fused in one kernel; deterministic (no float atomic adds:
    the same arguments give bit-identical outputs on the same device).

    Args:
        pos, vel: ``[C, 8]`` float32 positions and half-step velocities.
        ctl: ``[3]`` float32 ``(largest displacement since the rebuild, steps done, overflow)``.
        inp: the step's other tensors (:class:`~neurograph.kernels.StepInputs`); the kernel reads
            ``nbr`` (int32), ``pos0``, ``attr``, ``parent``, the learned-edge tables ``edge_nbr``,
            ``edge_slot``, ``degree`` and ``edge_weight``, ``edge_rest`` by edge slot, ``scale``, ``coef``
            ``[10]``, ``lo`` and ``hi``, and with ``parents`` the children in CSR form ``child_order``
            ``[C]`` and ``child_start [C + 1]`` (int32), all contiguous on the device of ``pos``;
            ``spring_w`` and ``spring_rest`` may be ``None``.
        pos_out, vel_out: ``[C, 8]`` outputs (must not alias the inputs).
        ctl_out: ``[3]`` output control vector; its entry 0 must hold a value ``<=`` the true maximum
            (0 after a rebuild): the launch before zeroed it through its ``ctl_reset``.
        ctl_reset: ``[3]`` the buffer to zero for the next launch (neither ``ctl`` nor ``ctl_out``).
        seed: 64-bit Philox key of this step (Langevin noise).
        noise: draw noise (``T > 0``).
        finalize: only complete the last step (``vel_out`` gets integer-time velocities; positions and
            control are not written) and return the energies.
        parents: add the parent pull's reaction on parents, each parent summing its children in CSR
            order (``False`` when no token has a parent: the children are not read).
        check: validate the arguments (a caller launching many steps on the same tensors checks the first).

    Returns:
        ``(pos_out, vel_out, ctl_out, energy)``; ``energy`` is ``[2]`` (potential, kinetic) with
        ``finalize``, else ``None``.

    Raises:
        TypeError: ``inp`` is not a :class:`~neurograph.kernels.StepInputs`.
        ValueError: a malformed argument (named in the message).
        RuntimeError: triton is missing, or the tensors are on the CPU without ``TRITON_INTERPRET=1``.
    """
    if check:
        if not isinstance(inp, StepInputs):
            raise TypeError(f"inp must be a StepInputs; got {type(inp).__name__}")
        tensors = dict(
            pos=pos, vel=vel, ctl=ctl, pos_out=pos_out, vel_out=vel_out, ctl_out=ctl_out, ctl_reset=ctl_reset,
        )  # fmt: skip
        tensors.update({name: getattr(inp, name) for name in _READ + (_CHILDREN if parents else ())})
        _check(tensors)
    if not triton_available():
        raise RuntimeError("force_step_triton needs triton and CUDA (or TRITON_INTERPRET=1 for CPU tensors)")
    if pos.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise RuntimeError(f"force_step_triton needs CUDA tensors (or TRITON_INTERPRET=1); got {pos.device}")
    from neurograph.kernels._force_step_triton import launch  # lazy: triton is heavy and optional

    part = launch(
        pos, vel, ctl, inp, pos_out=pos_out, vel_out=vel_out, ctl_out=ctl_out, ctl_reset=ctl_reset,
        parents=parents, seed=seed, noise=noise, finalize=finalize,
    )  # fmt: skip
    energy = part.sum(0) if part is not None else None
    return pos_out, vel_out, ctl_out, energy


def force_step_bytes(n: int, k: int, springs: int = 0) -> int:
    """Bytes one step must move for ``n`` tokens with ``k`` candidates and ``springs`` learned edges each
    (the traffic model of the module docstring)."""
    return n * (k * (32 + 16 + 4) + 96 + 64 + 16 + 8 + 4 + springs * (32 + 4 + 8 + 8))


def _check(t: dict[str, Tensor | None]) -> None:
    """Shapes, dtypes and devices of the state, the outputs and the fields of :class:`StepInputs` the kernel
    reads, by name (no host sync); raises ``ValueError`` naming the argument."""
    pos = t["pos"]
    if not isinstance(pos, Tensor) or pos.ndim != 2 or pos.shape[1] != 8 or pos.dtype != torch.float32:
        raise ValueError(f"pos must be a [C, 8] float32 tensor; got {_describe(pos)}")
    c, dev = pos.shape[0], pos.device
    want: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        name: ((c, *tail), dtype) for name, (tail, dtype) in _SHAPES.items()
    }
    nbr, edge_nbr = t["nbr"], t["edge_nbr"]
    for name, x in (("nbr", nbr), ("edge_nbr", edge_nbr)):
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] != c or x.dtype != torch.int32:
            raise ValueError(f"{_label(name)} must be a [{c}, k] int32 tensor; got {_describe(x)}")
    want["edge_slot"] = (tuple(edge_nbr.shape), torch.int32)
    for name in ("ctl", "ctl_out", "ctl_reset"):
        want[name] = ((3,), torch.float32)
    want["coef"] = ((10,), torch.float32)
    for name in ("scale", "lo", "hi"):
        want[name] = ((8,), torch.float32)
    ec = t["edge_weight"].shape[0] if isinstance(t["edge_weight"], Tensor) else -1
    want["edge_weight"] = want["edge_rest"] = ((ec,), torch.float32)
    if "child_start" in t:
        want["child_order"] = ((c,), torch.int32)
        want["child_start"] = ((c + 1,), torch.int32)
    for name, (shape, dtype) in want.items():
        x = t[name]
        if not isinstance(x, Tensor) or tuple(x.shape) != shape or x.dtype != dtype or x.device != dev:
            raise ValueError(
                f"{_label(name)} must be a {list(shape)} {dtype} tensor on {dev}; got {_describe(x)}"
            )
        if not x.is_contiguous():
            raise ValueError(f"{_label(name)} must be contiguous")
    for a, b in (
        ("pos_out", "pos"),
        ("vel_out", "vel"),
        ("ctl_out", "ctl"),
        ("ctl_reset", "ctl"),
        ("ctl_reset", "ctl_out"),
    ):
        if t[a].data_ptr() == t[b].data_ptr():
            raise ValueError(f"{a} must not alias {b} (the step writes out of place)")


def _label(name: str) -> str:
    """The argument's name in messages: ``StepInputs.nbr`` for a field of the inputs."""
    return f"StepInputs.{name}" if name in _READ + _CHILDREN else name


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{list(x.shape)} {x.dtype} tensor on {x.device}"
    return repr(x)
