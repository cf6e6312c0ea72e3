"""Random force-field systems on real token and edge stores, shared by the dynamics tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurograph.cdna import CDNA
from neurograph.fields import Dynamics, NeighborListFn, StepInputs, pack_inputs
from neurograph.state import EdgeState, TokenState


@dataclass
class Case:
    """Stores and the step inputs (neighbour list included) of one random system."""

    tokens: TokenState
    edges: EdgeState
    cdna: CDNA
    inputs: StepInputs

    @property
    def n(self) -> int:
        return self.tokens.count

    @property
    def nbr(self) -> torch.Tensor:
        """``[C, k']`` the exact neighbour list of the inputs."""
        return self.inputs.nbr

    @property
    def kernel_inputs(self) -> StepInputs:
        """The same inputs packed for the fused kernel (``dense=False``: children in CSR form, no dense
        spring tables)."""
        inp = self.inputs
        return pack_inputs(self.tokens, self.edges, self.cdna, inp.nbr, inp.pos0, dense=False)


def random_stores(
    n: int = 60,
    *,
    capacity: int = 128,
    seed: int = 0,
    spread: float = 0.2,
    levels: bool = True,
    parents: bool = True,
    dead: int = 3,
    degree: int = 4,
    hubs: int = 0,
    device: str = "cpu",
) -> tuple[TokenState, EdgeState]:
    """``n`` tokens in ``[-spread, spread]^8`` with varied masses, radii and strengths, random learned
    edges (at most ``degree`` per token), some on level 1 and parents among them, ``dead`` killed.
    ``hubs > 0``: every level-0 token gets one of the first ``hubs`` level-1 tokens as parent (many
    children per parent, spread over all the slots)."""
    rng = np.random.default_rng(seed)
    tokens = TokenState(capacity, device)
    edges = EdgeState(4 * capacity, capacity, max(8, degree + 4), device)
    level = ((rng.random(n) < 0.2) if levels else np.zeros(n, bool)).astype(np.int8)
    tokens.append(
        n,
        0,
        pos=rng.uniform(-spread, spread, (n, 8)).astype(np.float32),
        vel=rng.normal(0, 0.05, (n, 8)).astype(np.float32),
        mass=rng.choice([0.5, 1.0, 1.5, 2.0], n).astype(np.float32),  # equal masses occur: no well then
        radius=rng.uniform(0.04, 0.12, n).astype(np.float32),
        strength=rng.uniform(0.0, 1.0, n).astype(np.float32),
        level=level,
    )
    if parents and level.any():
        fields = np.nonzero(level == 1)[0]
        children = np.nonzero(level == 0)[0][: n // 3]
        if hubs:
            fields, children = fields[:hubs], np.nonzero(level == 0)[0]
        tokens.parent[torch.as_tensor(children)] = torch.as_tensor(rng.choice(fields, children.size))
    pairs = _edge_pairs(rng, n, degree)
    if len(pairs):
        m = len(pairs)
        edges.append(
            pairs[:, 0],
            pairs[:, 1],
            0,
            kind=rng.choice([0x00, 0x10, 0x50], m),
            weight=rng.uniform(0.1, 1.0, m).astype(np.float32),
            rest=rng.uniform(0.0, 0.15, m).astype(np.float32),
            confidence=0.5,
            mutability=1,
        )
    if dead:
        tokens.kill(rng.choice(n, dead, replace=False))
    return tokens, edges


def _edge_pairs(rng: np.random.Generator, n: int, degree: int) -> np.ndarray:
    src, dst = rng.integers(0, n, 4 * n), rng.integers(0, n, 4 * n)
    cand = np.unique(np.sort(np.stack([src, dst], 1), axis=1), axis=0)
    cand = cand[cand[:, 0] != cand[:, 1]]
    deg = np.zeros(n, int)
    out = []
    for a, b in rng.permutation(cand):
        if deg[a] < degree and deg[b] < degree:
            out.append((a, b))
            deg[a] += 1
            deg[b] += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def make_case(cdna: CDNA | None = None, *, capacity_k: int = 32, dense: bool = True, **kwargs) -> Case:
    """A random system with its exact neighbour list and step inputs (``ctl`` of the list untouched)."""
    tokens, edges = random_stores(**kwargs)
    cdna = cdna or CDNA(axis_scale=(1.0, 0.5, 2.0, 1.0, 1.5, 1.0, 0.8, 1.2))
    scale = torch.tensor(cdna.axis_scale, dtype=torch.float32, device=tokens.device)
    fn = NeighborListFn(skin=cdna.skin, capacity=capacity_k)
    nl = fn.allocate(tokens.pos, tokens.radius, tokens.level, tokens.alive, tokens.count, scale)
    assert nl.ctl[2] == 0, "the test system overflowed its neighbour list: raise capacity_k"
    return Case(tokens, edges, cdna, pack_inputs(tokens, edges, cdna, nl.idx, nl.pos0, dense=dense))


def thermal_samples(
    backend: str, steps: int = 300, burn_in: int = 100, every: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """``m v_a^2`` of 32 free tokens (no edges, no overlaps, varied masses) under a Langevin thermostat
    (``T = 0.02``, strong damping: velocities relax within ~20 steps), one ``[32, 8]`` sample per stats
    record after ``burn_in`` steps: ``([records, 32, 8], mass [32])``. Small enough for the Triton
    interpreter."""
    cdna = CDNA(temperature=0.02, damping=10.0, axis_min=(-50.0,) * 8, axis_max=(50.0,) * 8, skin=0.5)
    tokens, edges = random_stores(32, seed=15, spread=20.0, capacity=32, degree=0, dead=0, parents=False)
    tokens.radius.fill_(0.01)
    tokens.vel.zero_()
    dyn = Dynamics(backend)
    samples = []

    def record(_: object) -> None:
        if dyn.steps > burn_in:
            n = tokens.count
            samples.append(tokens.mass[:n, None] * tokens.vel[:n] ** 2)

    dyn.run(tokens, edges, cdna, steps, torch.Generator().manual_seed(0), every=every, on_stats=record)
    return torch.stack(samples), tokens.mass[: tokens.count].clone()


def brute_pairs(pos: torch.Tensor, tokens: TokenState, scale: torch.Tensor) -> set[tuple[int, int]]:
    """Every ordered pair of alive same-level tokens within interaction range ``r_i + r_j`` (brute force)."""
    n = tokens.count
    p = pos[:n].double()
    d = (((p[:, None, :] - p[None, :, :]) ** 2) * scale.double()).sum(-1).sqrt()  # (n, n)
    r = tokens.radius[:n].double()
    alive = tokens.alive[:n]
    same = tokens.level[:n, None] == tokens.level[None, :n]
    hit = (d < r[:, None] + r[None, :]) & same & alive[:, None] & alive[None, :]
    hit.fill_diagonal_(False)
    return {(int(i), int(j)) for i, j in hit.nonzero().tolist()}


def list_pairs(pos: torch.Tensor, nbr: torch.Tensor, tokens: TokenState, scale: torch.Tensor) -> set:
    """The pairs within interaction range that the neighbour list ``nbr`` shows."""
    n = tokens.count
    rows = torch.arange(nbr.shape[0])[:, None].expand_as(nbr)
    keep = nbr >= 0
    i, j = rows[keep], nbr[keep].long()
    p = pos.double()
    d = (((p[i] - p[j]) ** 2) * scale.double()).sum(-1).sqrt()
    r = tokens.radius.double()
    hit = (d < r[i] + r[j]) & tokens.alive[i] & tokens.alive[j] & (i < n)
    return {(int(a), int(b)) for a, b in zip(i[hit].tolist(), j[hit].tolist())}
