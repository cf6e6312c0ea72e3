"""The experience stream: what was sensed, what was done, how it was judged; sampled for learning.

:class:`ExperienceStream` is a ring buffer of fixed capacity ``C`` on tensors (any device). Each row is
one step of experience:

``state [8]``, ``action [8]`` (points of the semantic space), ``reward [4]`` (the four reward slots of
:data:`REWARD_SLOTS`: homeostasis, curiosity, efficiency, goal), ``event`` (an event type, stored as a
code of the stream's vocabulary), ``episode`` and ``step``. When full, the oldest rows are overwritten.

**Samplers** (small frozen dataclasses; ``probs(stream)`` gives the sampling distribution over the rows
held, ``sampler(stream, n, generator)`` draws ``n`` row indices with replacement by
``torch.multinomial``):

- :class:`UniformSampler`: ``p_i = 1 / size``;
- :class:`PrioritySampler`: ``p_i ∝ (|r_i| + eps)^alpha`` with ``r_i`` the row's total reward (or one
  slot), as prioritised replay (Schaul et al., 2016) does with TD errors;
- :class:`RecencySampler`: ``p_i ∝ 2^(-age_i / half_life)``, ``age_i`` = rows written since row ``i``;
- :class:`MixedSampler`: the mixture ``p_i = sum_s w_s p_s(i) / sum_s w_s`` of other samplers.

**Appraisers** turn a transition ``(state, action, next_state)`` into rewards (frozen dataclasses, each
``__call__ -> [B]``), combined into the four slots by :class:`Appraisal`:

- :class:`Homeostasis`: drive reduction (Keramati & Gutkin, 2014): ``D(s) - D(s')`` with
  ``D(x) = |x - setpoint| / scale``: positive when a step brings the state back toward its set point;
- :class:`Curiosity`: the curiosity of the cell ``s'`` falls in (:class:`CuriosityMap`);
- :class:`Efficiency`: the cost of acting, ``-cost * mean(a^2)``;
- :class:`Goal`: 1 when ``s'`` lies within ``radius`` of the goal, else 0.

**Curiosity** (:class:`CuriosityMap`): the space is cut into cubic cells of side ``cell_size``; a cell
never seen scores 1, a cell last seen ``dt`` ago scores ``1 - exp(-dt / tau)`` (0 on an immediate repeat,
``1 - 1/e ≈ 0.632`` after ``tau``, back toward 1 as the memory fades). Scoring a batch has sequential
semantics: a cell met twice in one batch scores the second time against the first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from neurograph.space import DIM

__all__ = [
    "REWARD_SLOTS",
    "Appraisal",
    "Curiosity",
    "CuriosityMap",
    "Efficiency",
    "ExperienceBatch",
    "ExperienceStream",
    "Goal",
    "Homeostasis",
    "MixedSampler",
    "PrioritySampler",
    "RecencySampler",
    "UniformSampler",
]

REWARD_SLOTS: tuple[str, ...] = ("homeostasis", "curiosity", "efficiency", "goal")


@dataclass(frozen=True)
class ExperienceBatch:
    """Rows of an :class:`ExperienceStream`.

    Shapes:
        index ``[B]`` (rows of the buffer), state, action ``[B, 8]``, reward ``[B, 4]``, event, episode,
        step ``[B]``; ``event_types`` the ``B`` type names.
    """

    index: Tensor
    state: Tensor
    action: Tensor
    reward: Tensor
    event: Tensor
    episode: Tensor
    step: Tensor
    event_types: list[str]

    def __len__(self) -> int:
        return int(self.index.numel())


class ExperienceStream:
    """A ring buffer of experience on tensors (see the module docstring).

    Args:
        capacity: rows held; the oldest are overwritten when full.
        device: where the tensors live.
    """

    def __init__(self, capacity: int = 100_000, device: str | torch.device = "cpu") -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self.device = torch.device(device)
        dev = self.device
        self.state = torch.zeros(capacity, DIM, device=dev)
        self.action = torch.zeros(capacity, DIM, device=dev)
        self.reward = torch.zeros(capacity, len(REWARD_SLOTS), device=dev)
        self.event = torch.zeros(capacity, dtype=torch.int32, device=dev)
        self.episode = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self.step = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self.order = torch.full((capacity,), -1, dtype=torch.int64, device=dev)  # write number of each row
        self.total = 0  # rows ever written (host)
        self.event_types: list[str] = []  # vocabulary: code -> type
        self._codes: dict[str, int] = {}

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def __repr__(self) -> str:
        return (
            f"ExperienceStream(size={len(self)}, capacity={self.capacity}, written={self.total}, "
            f"device={str(self.device)!r})"
        )

    def add(
        self,
        state: Any,
        action: Any = None,
        reward: Any = None,
        event_type: str | Sequence[str] = "experience.step",
        episode: int | Any = 0,
        step: int | Any | None = None,
    ) -> Tensor:
        """Append ``B`` rows (or one: ``state [8]``); returns the buffer rows written ``[B]``.

        Args:
            state: ``[B, 8]`` or ``[8]``.
            action: ``[B, 8]``/``[8]`` (zeros by default).
            reward: ``[B, 4]``/``[4]`` in the order of :data:`REWARD_SLOTS` (zeros by default).
            event_type: one type for all rows or ``B`` types.
            episode: one episode number or ``B``.
            step: one step number or ``B`` (default: the write numbers of the rows).
        """
        s = self._rows(state, DIM, "state")
        b = s.shape[0]
        a = self._rows(action, DIM, "action", b)
        r = self._rows(reward, len(REWARD_SLOTS), "reward", b)
        types = [event_type] * b if isinstance(event_type, str) else list(event_type)
        if len(types) != b:
            raise ValueError(f"event_type must be one type or {b} types, got {len(types)}")
        codes = torch.tensor([self._code(t) for t in types], dtype=torch.int32, device=self.device)
        written = torch.arange(self.total, self.total + b, dtype=torch.int64, device=self.device)  # (B,)
        ep = torch.as_tensor(episode, dtype=torch.int64, device=self.device).expand(b)
        st = (
            written
            if step is None
            else torch.as_tensor(step, dtype=torch.int64, device=self.device).expand(b)
        )
        keep = slice(max(0, b - self.capacity), b)  # a batch larger than the buffer keeps its tail
        rows = written[keep] % self.capacity
        self.state[rows] = s[keep]
        self.action[rows] = a[keep]
        self.reward[rows] = r[keep]
        self.event[rows] = codes[keep]
        self.episode[rows] = ep[keep]
        self.step[rows] = st[keep]
        self.order[rows] = written[keep]
        self.total += b
        return rows

    def get(self, index: Tensor) -> ExperienceBatch:
        """The rows ``index`` (buffer rows ``0..len-1``) as an :class:`ExperienceBatch`."""
        index = torch.as_tensor(index, dtype=torch.int64, device=self.device)
        codes = self.event[index]
        return ExperienceBatch(
            index=index,
            state=self.state[index],
            action=self.action[index],
            reward=self.reward[index],
            event=codes,
            episode=self.episode[index],
            step=self.step[index],
            event_types=[self.event_types[c] for c in codes.tolist()],
        )

    def sample(
        self, n: int, sampler: Any = None, generator: torch.Generator | None = None
    ) -> ExperienceBatch:
        """Draw ``n`` rows with replacement (default :class:`UniformSampler`)."""
        sampler = sampler if sampler is not None else UniformSampler()
        return self.get(sampler(self, n, generator))

    def _code(self, event_type: str) -> int:
        code = self._codes.get(event_type)
        if code is None:
            if not isinstance(event_type, str) or not event_type:
                raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
            code = self._codes[event_type] = len(self.event_types)
            self.event_types.append(event_type)
        return code

    def _rows(self, value: Any, width: int, name: str, b: int | None = None) -> Tensor:
        if value is None:
            return torch.zeros(b or 1, width, device=self.device)
        x = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != width or (b is not None and x.shape[0] not in (1, b)):
            raise ValueError(
                f"{name} must have shape [{b or 'B'}, {width}] or [{width}], got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite numbers")
        return x.expand(b, width) if b is not None else x


# --- samplers ---------------------------------------------------------------------------------------------
class _Sampler(ABC):
    @abstractmethod
    def probs(self, stream: ExperienceStream) -> Tensor:
        """``[size]`` sampling probabilities of the buffer rows."""

    def __call__(self, stream: ExperienceStream, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` buffer rows drawn with replacement from :meth:`probs`. Shapes: ``-> [n]`` int64."""
        if len(stream) == 0:
            raise ValueError("cannot sample from an empty experience stream")
        return torch.multinomial(self.probs(stream), n, replacement=True, generator=generator)


@dataclass(frozen=True)
class UniformSampler(_Sampler):
    """Every row held equally likely."""

    def probs(self, stream: ExperienceStream) -> Tensor:
        """``[size]`` probabilities."""
        size = len(stream)
        return torch.full((size,), 1.0 / size, dtype=torch.float64, device=stream.device)


@dataclass(frozen=True)
class PrioritySampler(_Sampler):
    """``p_i ∝ (|r_i| + eps)^alpha``; ``r_i`` the total reward of a row, or its reward in ``slot``."""

    alpha: float = 0.6  # 0: uniform, 1: proportional to |reward|
    eps: float = 1e-3  # keeps rows without reward reachable
    slot: str | None = None  # one of REWARD_SLOTS, None for the sum of the four

    def probs(self, stream: ExperienceStream) -> Tensor:
        reward = stream.reward[: len(stream)].double()
        r = reward.sum(1) if self.slot is None else reward[:, REWARD_SLOTS.index(self.slot)]
        w = (r.abs() + self.eps) ** self.alpha
        return w / w.sum()


@dataclass(frozen=True)
class RecencySampler(_Sampler):
    """``p_i ∝ 2^(-age_i / half_life)``: a row ``half_life`` writes old is half as likely as the newest."""

    half_life: float = 1000.0  # rows

    def probs(self, stream: ExperienceStream) -> Tensor:
        age = (stream.total - 1 - stream.order[: len(stream)]).double()
        w = torch.exp2(-age / self.half_life)
        return w / w.sum()


@dataclass(frozen=True)
class MixedSampler(_Sampler):
    """The mixture ``sum_s w_s p_s / sum_s w_s`` of ``(sampler, weight)`` parts."""

    parts: tuple[tuple[Any, float], ...] = (
        (UniformSampler(), 0.5),
        (PrioritySampler(), 0.25),
        (RecencySampler(), 0.25),
    )

    def probs(self, stream: ExperienceStream) -> Tensor:
        total = sum(w for _, w in self.parts)
        return sum(s.probs(stream) * (w / total) for s, w in self.parts)


# --- curiosity and appraisers -----------------------------------------------------------------------------
@dataclass
class CuriosityMap:
    """When each cell of the space was last seen; scores how new a state is (module docstring).

    Args:
        cell_size: side of the cubic cells.
        tau: time constant of forgetting (in the units of the times given to :meth:`score`).
        low, high: the box the cells tile (states outside are counted in the border cells).
    """

    cell_size: float = 0.1
    tau: float = 100.0
    low: float = -1.0
    high: float = 1.0
    device: str | torch.device = "cpu"
    keys: Tensor = field(init=False, repr=False)  # [K] sorted cell keys seen so far
    last: Tensor = field(init=False, repr=False)  # [K] time each was last seen

    def __post_init__(self) -> None:
        if not (self.cell_size > 0 and self.tau > 0 and self.high > self.low):
            raise ValueError(f"need cell_size > 0, tau > 0 and high > low; got {self!r}")
        self.per_axis = math.ceil((self.high - self.low) / self.cell_size)
        if self.per_axis**DIM >= 2**62:
            raise ValueError(f"cell_size = {self.cell_size} makes too many cells to key in 64 bits")
        self.keys = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.last = torch.zeros(0, dtype=torch.float64, device=self.device)

    def cells(self, states: Tensor) -> Tensor:
        """Cell key of each state. Shapes: ``[B, 8] -> [B]`` int64."""
        q = torch.floor((states.double() - self.low) / self.cell_size).long().clamp(0, self.per_axis - 1)
        radix = self.per_axis ** torch.arange(DIM, device=q.device, dtype=torch.int64)  # (8,)
        return (q * radix).sum(1)

    def score(self, states: Any, t: Any, update: bool = True) -> Tensor:
        """Curiosity of each state at time ``t``: 1 for an unseen cell, else ``1 - exp(-dt / tau)``.

        Args:
            states: ``[B, 8]`` (or ``[8]``).
            t: one time or ``B`` times (non-decreasing within the batch for sequential semantics).
            update: remember the cells as seen at these times.

        Returns:
            ``[B]`` float64 scores in [0, 1].
        """
        x = torch.as_tensor(states, device=self.keys.device)
        x = x[None, :] if x.ndim == 1 else x
        b = x.shape[0]
        times = torch.as_tensor(t, dtype=torch.float64, device=x.device).expand(b)
        key = self.cells(x)  # (B,)
        order = torch.argsort(key, stable=True)  # rows by (key, row)
        k_sorted = key[order]
        same = torch.zeros(b, dtype=torch.bool, device=x.device)
        same[1:] = k_sorted[1:] == k_sorted[:-1]  # an earlier row of the batch saw this cell
        prev = torch.full((b,), math.nan, dtype=torch.float64, device=x.device)
        prev_sorted = torch.full((b,), math.nan, dtype=torch.float64, device=x.device)
        prev_sorted[1:] = torch.where(same[1:], times[order][:-1], math.nan)
        seen_before = self._lookup(k_sorted)  # (B,) last time in the table, nan if never
        prev_sorted = torch.where(same, prev_sorted, seen_before)
        prev[order] = prev_sorted
        dt = (times - prev).clamp_min(0.0)
        score = torch.where(torch.isnan(prev), torch.ones_like(dt), 1.0 - torch.exp(-dt / self.tau))
        if update:
            self._remember(key, times)
        return score

    def _lookup(self, key: Tensor) -> Tensor:
        if self.keys.numel() == 0:
            return torch.full(key.shape, math.nan, dtype=torch.float64, device=key.device)
        at = torch.searchsorted(self.keys, key).clamp_max(self.keys.numel() - 1)
        return torch.where(self.keys[at] == key, self.last[at], math.nan)

    def _remember(self, key: Tensor, times: Tensor) -> None:
        uniq, inverse = torch.unique(key, return_inverse=True)
        latest = torch.full(uniq.shape, -math.inf, dtype=torch.float64, device=key.device)
        latest = latest.scatter_reduce(0, inverse, times, reduce="amax")  # (U,)
        keys = torch.cat([self.keys, uniq])
        last = torch.cat([self.last, latest])
        keys, inv = torch.unique(keys, return_inverse=True)
        merged = torch.full(keys.shape, -math.inf, dtype=torch.float64, device=key.device)
        self.keys, self.last = keys, merged.scatter_reduce(0, inv, last, reduce="amax")

    def __len__(self) -> int:
        return int(self.keys.numel())


@dataclass(frozen=True)
class Homeostasis:
    """Drive reduction ``D(s) - D(s')``, ``D(x) = |x - setpoint| / scale``. Shapes: ``-> [B]``."""

    setpoint: tuple[float, ...] = (0.0,) * DIM
    scale: float = 1.0

    def __call__(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        sp = torch.tensor(self.setpoint, dtype=state.dtype, device=state.device)
        return ((state - sp).norm(dim=-1) - (next_state - sp).norm(dim=-1)) / self.scale


@dataclass(frozen=True)
class Curiosity:
    """The curiosity of the cell the next state falls in (updates the map). Shapes: ``-> [B]``."""

    curiosity_map: CuriosityMap = field(default_factory=CuriosityMap)

    def __call__(self, state: Tensor, action: Tensor, next_state: Tensor, t: Any = 0.0) -> Tensor:
        return self.curiosity_map.score(next_state, t).to(state.dtype)


@dataclass(frozen=True)
class Efficiency:
    """The cost of acting: ``-cost * mean(action^2)``. Shapes: ``-> [B]``."""

    cost: float = 1.0

    def __call__(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        return -self.cost * (action * action).mean(dim=-1)


@dataclass(frozen=True)
class Goal:
    """1 when the next state lies within ``radius`` of ``goal``, else 0. Shapes: ``-> [B]``."""

    goal: tuple[float, ...] = (0.0,) * DIM
    radius: float = 0.1

    def __call__(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        g = torch.tensor(self.goal, dtype=next_state.dtype, device=next_state.device)
        return ((next_state - g).norm(dim=-1) <= self.radius).to(state.dtype)


@dataclass(frozen=True)
class Appraisal:
    """The four reward slots of a transition from four appraisers (a missing one gives 0)."""

    homeostasis: Homeostasis | None = None
    curiosity: Curiosity | None = None
    efficiency: Efficiency | None = None
    goal: Goal | None = None

    def __call__(self, state: Any, action: Any, next_state: Any, t: Any = 0.0) -> Tensor:
        """Rewards ``[B, 4]`` in the order of :data:`REWARD_SLOTS`."""
        s = torch.as_tensor(state, dtype=torch.float32)
        s = s[None, :] if s.ndim == 1 else s
        a = torch.as_tensor(action, dtype=torch.float32, device=s.device).expand_as(s)
        s2 = torch.as_tensor(next_state, dtype=torch.float32, device=s.device).expand_as(s)
        out = torch.zeros(s.shape[0], len(REWARD_SLOTS), device=s.device)
        if self.homeostasis is not None:
            out[:, 0] = self.homeostasis(s, a, s2)
        if self.curiosity is not None:
            out[:, 1] = self.curiosity(s, a, s2, t)
        if self.efficiency is not None:
            out[:, 2] = self.efficiency(s, a, s2)
        if self.goal is not None:
            out[:, 3] = self.goal(s, a, s2)
        return out
