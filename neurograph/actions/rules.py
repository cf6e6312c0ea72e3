"""Rules: which actions a processed signal triggers, on which path, with which priority.

A :class:`Rule` is ``condition -> actions``:

- ``condition`` is ``None`` (every signal), a callable ``fn(ctx) -> bool`` over the
  :class:`~neurograph.actions.registry.ActionContext`, an event-type pattern on the signal's type
  (``"signal.input.external.text.*"``, dot-aware as on the bus), or a filter dict of the bus
  (:func:`~neurograph.events.compile_filter`) evaluated on the event ``(channel="signals",
  event_type=<signal's type>, timestamp=<signal's>, data=<the EmitResult>)``, e.g.
  ``{"data.is_novel": True, "data.anomaly_score": {"$gt": 0.5}}``;
- ``actions`` are registry names, run in order;
- ``path`` is ``"hot"`` (awaited before the pipeline returns; its results are in ``action_results``) or
  ``"cold"`` (queued and run afterwards by the controller's one background task);
- ``priority_boost`` is added to the signal's priority (clamped to 0..255) to give the actions' priority:
  within a path, actions of rules with a larger boost run first (ties: rule order).

For batches, ``batch_condition(bctx) -> [B] bool``, when given, decides the rows vectorised (it stands in
for ``condition``: give both the same meaning); otherwise patterns are decided once per batch (one event
type) and filter dicts and callables are evaluated row by row (correct, slower).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurograph.actions.registry import ActionContext, ActionError, BatchContext
from neurograph.errors import InvalidQuery
from neurograph.events import Event, compile_filter

__all__ = ["PATHS", "Rule"]

PATHS = ("hot", "cold")


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """A condition and the actions it triggers (module docstring).

    Raises:
        ActionError: a malformed name, path, boost or action list; InvalidQuery: a malformed pattern or
        filter dict.
    """

    name: str
    actions: tuple[str, ...]
    condition: Any = None  # None | fn(ctx) -> bool | event-type pattern | filter dict
    path: str = "hot"  # hot: awaited; cold: the background task
    priority_boost: int = 0  # added to the signal's priority; larger boosts run first
    batch_condition: Callable[[BatchContext], Any] | None = field(default=None, repr=False)
    enabled: bool = True
    match_fn: Callable[[ActionContext], bool] = field(init=False, repr=False, compare=False)
    pattern: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ActionError("rule", self.name, "must be a non-empty string")
        actions = (self.actions,) if isinstance(self.actions, str) else tuple(self.actions)
        if not actions or not all(isinstance(a, str) for a in actions):
            raise ActionError("actions", self.actions, f"rule {self.name!r} needs one or more action names")
        if self.path not in PATHS:
            raise ActionError("path", self.path, f"must be one of {list(PATHS)}")
        boost = self.priority_boost
        if isinstance(boost, bool) or not isinstance(boost, int) or not -255 <= boost <= 255:
            raise ActionError("priority_boost", boost, "must be an integer in -255..255")
        object.__setattr__(self, "actions", actions)
        pattern = None
        cond = self.condition
        if cond is None:
            match_fn = _always
        elif isinstance(cond, str):
            compiled = compile_filter(cond)  # raises InvalidQuery for a malformed pattern
            pattern = cond
            match_fn = _pattern_match(compiled.route)
        elif isinstance(cond, Mapping):
            match_fn = _filter_match(compile_filter(cond).match_fn)
        elif callable(cond):
            match_fn = cond
        else:
            raise InvalidQuery(
                f"rule {self.name!r}: condition must be None, a callable, a pattern or a filter dict"
            )
        object.__setattr__(self, "match_fn", match_fn)
        object.__setattr__(self, "pattern", pattern)

    def matches(self, ctx: ActionContext) -> bool:
        """Whether this rule fires for one signal."""
        return bool(self.match_fn(ctx))

    def rows(self, bctx: BatchContext) -> np.ndarray:
        """``[R]`` rows of a batch this rule fires for (``bctx.rows`` ignored)."""
        n = len(bctx.signals)
        if self.batch_condition is not None:
            mask = np.asarray(self.batch_condition(bctx), dtype=bool).reshape(-1)
            if mask.shape != (n,):
                raise ActionError("batch_condition", mask.shape, f"rule {self.name!r} must give {n} booleans")
            return np.flatnonzero(mask)
        if self.condition is None:
            return np.arange(n)
        if self.pattern is not None:  # one event type per batch: decided once
            fires = self.match_fn(ActionContext(bctx.signals[0], None)) if n else False
            return np.arange(n) if fires else np.arange(0)
        keep = [i for i in range(n) if self.match_fn(bctx.context(i))]
        return np.asarray(keep, dtype=np.int64)


def _pattern_match(route: Callable[[str, str], bool]) -> Callable[[ActionContext], bool]:
    def match(ctx: ActionContext) -> bool:
        return route("signals", ctx.signal.event_type)

    return match


def _filter_match(match_fn: Callable[[Event], bool]) -> Callable[[ActionContext], bool]:
    def match(ctx: ActionContext) -> bool:
        s = ctx.signal
        return match_fn(Event("signals", s.event_type, s.timestamp, ctx.result))

    return match


def order(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """The enabled rules, larger ``priority_boost`` first, ties in the given order."""
    return tuple(sorted((r for r in rules if r.enabled), key=lambda r: -r.priority_boost))
