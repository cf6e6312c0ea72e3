"""Actions: named reactions to processed signals, and the registry that holds them.

An :class:`Action` is a name (one lowercase segment, ``text_response``), a function ``fn(ctx)`` called
for one signal with an :class:`ActionContext` (the signal event, the engine's result, the bus) and,
optionally, ``batch_fn(bctx)`` called once for the rows of a batch a rule selected
(:class:`BatchContext`). Either may be a plain function or ``async def``; what it returns is the
action's result (a mapping, or anything JSON-friendly). ``batch_fn`` returns one result per selected row
(a sequence, e.g. :class:`LazyRows`) or one mapping shared by all of them; without it a batch falls back
to ``fn`` row by row.

Actions raise what they like: the controller records the failure (``status="failed"``, ``error``) and
goes on. Registry misuse (an unknown or malformed name, a taken name) raises :class:`ActionError`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurograph.errors import NeurographError

__all__ = ["Action", "ActionContext", "ActionError", "ActionRegistry", "BatchContext", "LazyRows"]

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")  # one event-type segment: action.<name>.completed


class ActionError(NeurographError, ValueError):
    """An action or rule is malformed or unknown; names the field and the value, changes nothing."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid {field}: {reason}; got {value!r}")


@dataclass(slots=True, eq=False)
class ActionContext:
    """What an action sees for one signal: the gateway's ``signal`` (a ``SignalEvent``), the engine's
    ``result`` (an ``EmitResult``: ``result["is_novel"]``, ...) and the ``bus`` (or ``None``)."""

    signal: Any
    result: Any
    bus: Any = None


@dataclass(slots=True, eq=False)
class BatchContext:
    """What a batch action sees: the ``signals`` (a ``SignalBatch``), the ``results`` (a ``BatchResult``),
    the ``rows`` a rule selected and the ``bus``.

    Shapes:
        rows: ``[R]`` int64 row indices into the batch, increasing.
    """

    signals: Any
    results: Any
    rows: np.ndarray
    bus: Any = None

    def context(self, i: int) -> ActionContext:
        """Row ``i`` of the batch as an :class:`ActionContext`."""
        return ActionContext(self.signals[i], self.results[i], self.bus)


class LazyRows(Sequence[Any]):
    """``n`` per-row results made on access by ``fn(j)``: a batch action's result without ``n`` objects."""

    __slots__ = ("fn", "n")

    def __init__(self, fn: Callable[[int], Any], n: int) -> None:
        self.fn, self.n = fn, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j: Any) -> Any:
        if isinstance(j, slice):
            return [self.fn(k) for k in range(*j.indices(self.n))]
        if not -self.n <= j < self.n:
            raise IndexError(j)
        return self.fn(j % self.n)

    def __repr__(self) -> str:
        return f"LazyRows(n={self.n})"


@dataclass(frozen=True)
class Action:
    """A named reaction (module docstring).

    Raises:
        ActionError: a malformed name, or ``fn`` / ``batch_fn`` not callable.
    """

    name: str  # one lowercase segment; events are action.<name>.completed / .failed
    fn: Callable[[ActionContext], Any] = field(repr=False)
    batch_fn: Callable[[BatchContext], Any] | None = field(default=None, repr=False)
    description: str = ""
    is_async: bool = field(init=False, repr=False)  # fn is a coroutine function
    batch_is_async: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ActionError("action", self.name, "must be one lowercase segment like 'text_response'")
        if not callable(self.fn):
            raise ActionError("fn", self.fn, "must be callable")
        if self.batch_fn is not None and not callable(self.batch_fn):
            raise ActionError("batch_fn", self.batch_fn, "must be callable or None")
        object.__setattr__(self, "is_async", _is_coroutine_fn(self.fn))
        object.__setattr__(self, "batch_is_async", _is_coroutine_fn(self.batch_fn))


def _is_coroutine_fn(fn: Any) -> bool:
    if fn is None:
        return False
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class ActionRegistry:
    """Actions by name."""

    def __init__(self, actions: Sequence[Action] = ()) -> None:
        self._actions: dict[str, Action] = {}
        for action in actions:
            self.register(action)

    def register(
        self,
        action: Action | str,
        fn: Callable[[ActionContext], Any] | None = None,
        *,
        batch_fn: Callable[[BatchContext], Any] | None = None,
        description: str = "",
        replace: bool = False,
    ) -> Action:
        """Register an :class:`Action`, or build one from a name and ``fn``; returns it.

        Raises:
            ActionError: a malformed action, or a name already taken (unless ``replace``).
        """
        if isinstance(action, str):
            if fn is None:
                raise ActionError("fn", fn, f"action {action!r} needs a function")
            action = Action(action, fn, batch_fn, description)
        elif not isinstance(action, Action):
            raise ActionError("action", action, "must be an Action or an action name")
        if action.name in self._actions and not replace:
            raise ActionError("action", action.name, "is already registered (pass replace=True)")
        self._actions[action.name] = action
        return action

    def unregister(self, name: str) -> Action:
        """Remove and return the action ``name``."""
        action = self[name]
        del self._actions[name]
        return action

    def __getitem__(self, name: str) -> Action:
        action = self._actions.get(name)
        if action is None:
            raise ActionError("action", name, f"is not registered; registered: {sorted(self._actions)}")
        return action

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        return f"ActionRegistry({', '.join(self._actions)})"
