"""Typed errors of neurograph.

Every error names the field and the offending value, and is raised *before* any state changes:
a rejected signal, CDNA or growth leaves tokens, edges and stats exactly as they were.

All errors derive from :class:`NeurographError`; the validation errors also derive from
``ValueError`` so that generic callers keep working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CapacityError",
    "InvalidArgument",
    "InvalidCDNA",
    "InvalidQuery",
    "InvalidSignal",
    "NeurographError",
    "OptionMismatch",
    "QuotaExceeded",
    "StoreError",
    "UnknownToken",
]


class NeurographError(Exception):
    """Base class of every error raised by neurograph."""


class InvalidArgument(NeurographError, ValueError):
    """An argument of a public call is malformed (``step(-5)``, ``hierarchy_every=0``, ...); nothing changed.

    Attributes:
        field: the argument's name.
        value: the offending value.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid {field}: {reason}; got {_short(value)}")


class InvalidSignal(InvalidArgument):
    """A signal failed validation (shape, finiteness, priority, event type, box in strict mode).

    Attributes:
        field: the name of the offending field (``"vector"``, ``"priority"``, ``"event_type"``, ...).
        value: the offending value (shortened for printing).
        index: the row of the batch the value belongs to, or ``None`` for a single emit.
    """

    def __init__(self, field: str, value: Any, reason: str, index: int | None = None) -> None:
        self.index = index
        where = f" (row {index})" if index is not None else ""
        super().__init__(f"{field}{where}", value, reason)
        self.field = field


class InvalidCDNA(NeurographError, ValueError):
    """A constitution broke one or more rules; ``violations`` lists every one of them."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = list(violations)
        lines = "\n  - ".join(self.violations)
        super().__init__(f"invalid CDNA ({len(self.violations)} violation(s)):\n  - {lines}")


class QuotaExceeded(NeurographError):
    """A growth would exceed a quota of the CDNA or of the device; nothing was grown.

    Attributes:
        quota: which quota (``"max_tokens"``, ``"max_edges"``, ``"max_memory_bytes"``, ``"device_memory"``).
        limit: the quota's value.
        requested: what the growth would have reached.
    """

    def __init__(self, quota: str, limit: int | float, requested: int | float) -> None:
        self.quota = quota
        self.limit = limit
        self.requested = requested
        super().__init__(f"quota {quota} exceeded: limit {limit}, the operation needs {requested}")


class CapacityError(NeurographError):
    """A tensor store could not grow (e.g. a requested capacity below what is in use)."""


class UnknownToken(NeurographError, KeyError):
    """A token id that does not exist (or no longer exists) was asked for."""

    def __init__(self, token_id: Any) -> None:
        self.token_id = token_id
        super().__init__(f"unknown token id: {token_id!r}")

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return f"unknown token id: {self.token_id!r}"


class InvalidQuery(NeurographError, ValueError):
    """A query or filter is malformed; the message names the position or field and what was expected."""


class StoreError(NeurographError):
    """A persistent store is missing, damaged, or written by a newer format version."""


class OptionMismatch(StoreError, ValueError):
    """An engine option given to ``Engine.open`` / ``Engine(path=...)`` contradicts the one the store keeps.

    The store records every option that shapes the state (``hierarchy_every``, ``dynamics``) and
    restores it; opening with another value would re-run the log differently, so it is refused (nothing
    was changed). Leave the argument out to continue with the store's value, or change it after opening.

    Attributes:
        field: the option's name.
        stored: the store's value.
        given: the value passed.
    """

    def __init__(self, field: str, stored: Any, given: Any) -> None:
        self.field = field
        self.stored = stored
        self.given = given
        super().__init__(
            f"invalid {field}: the store keeps {field}={stored!r}, got {given!r}; leave it out to continue "
            f"with the store's value, or set it after opening"
        )


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
