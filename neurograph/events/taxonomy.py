"""The vocabulary of events: channels, the :class:`Event` record, the taxonomy of types, patterns.

An :class:`Event` is a **channel** (``signals, actions, metrics, logs, status, connections``), a dotted
**event type**, a ``timestamp`` (``time.time()``) and a ``data`` mapping (not copied: read-only). The
:class:`EventTypeRegistry` starts with the 41 leaves of the taxonomy of DESIGN §7 (:data:`TAXONOMY`;
prefixes such as ``signal.input`` are not types) and registers a type on its first publish.

The rule for a valid event type is here once (:func:`is_event_type`): two or more dotted lowercase
segments ``[a-z][a-z0-9_]*``, at most :data:`MAX_TYPE_LENGTH` characters. The Guardian (signals) and the
gateway (sensors) use it.

**Patterns**: ``"*"`` matches every type, ``"a.b.*"`` every type *under* ``a.b.`` at any depth
(``signal.input.*`` matches ``signal.input.external.text.chat``, not ``signal.inputs.x`` nor
``signal.input``), anything else one type. They are matched on publish: later types are caught too.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from neurograph.errors import InvalidQuery

__all__ = [
    "CHANNELS",
    "FIELDS",
    "MAX_TYPE_LENGTH",
    "SEGMENT",
    "TAXONOMY",
    "Event",
    "EventTypeRegistry",
    "check_name",
    "is_event_type",
    "match_pattern",
    "pattern_fn",
]

CHANNELS: tuple[str, ...] = ("signals", "actions", "metrics", "logs", "status", "connections")
FIELDS: tuple[str, ...] = ("channel", "event_type", "timestamp", "data")  # top-level filter fields
MAX_TYPE_LENGTH = 128  # characters, as for the event type of a signal (DESIGN §3)
SEGMENT = r"[a-z][a-z0-9_]*"  # one segment of a dotted name
_NAME = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})+")
_WILDCARD = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})*\.\*")

_TAXONOMY_ROWS = {  # DESIGN §7 with its braces unfolded: prefix -> leaves
    "signal.input.external.text": "chat command query transcription",
    "signal.input.external.audio": "speech music ambient alert",
    "signal.input.external.vision": "object face gesture scene",
    "signal.input.external.environment": "temperature humidity pressure light",
    "signal.input.internal": "thought memory_recall emotion prediction hypothesis",
    "signal.input.system.resource": "memory_low memory_critical cpu_high",
    "signal.input.system.lifecycle": "startup shutdown",
    "signal.input.system.timer": "tick heartbeat",
    "signal.activation": "resonance action_trigger memory_association pattern_match cascade",
    "signal.anomaly": "novelty contradiction outlier unexpected",
    "signal.meta.subscription": "added removed",
    "signal.meta.sensor": "registered unregistered",
}
TAXONOMY = tuple(f"{prefix}.{leaf}" for prefix, leaves in _TAXONOMY_ROWS.items() for leaf in leaves.split())


def is_event_type(name: Any) -> bool:
    """Whether ``name`` is a valid event type (the one rule of the package; see the module docstring)."""
    return isinstance(name, str) and len(name) <= MAX_TYPE_LENGTH and _NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Event:
    """One published event; ``to_dict()`` is its wire form (the websocket protocol of DESIGN §9)."""

    channel: str
    event_type: str
    timestamp: float
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(FIELDS, (self.channel, self.event_type, self.timestamp, dict(self.data))))


def check_name(name: Any, pattern: bool = False) -> str:
    """Returns ``name`` if it is a valid event type (or, with ``pattern``, a pattern), else raises."""
    ok = isinstance(name, str) and len(name) <= MAX_TYPE_LENGTH
    if is_event_type(name) or (ok and pattern and (name == "*" or _WILDCARD.fullmatch(name))):
        return name
    what, alt = ("event type pattern", ", 'a.b.*' or '*'") if pattern else ("event type", "")
    raise InvalidQuery(f"invalid {what} {name!r}: expected 2+ segments [a-z][a-z0-9_]*, <=128 chars{alt}")


class EventTypeRegistry:
    """The set of known event types, preloaded with :data:`TAXONOMY`."""

    def __init__(self, types: Iterable[str] = TAXONOMY) -> None:
        self._types: set[str] = {check_name(name) for name in types}

    def register(self, event_type: str) -> str:
        """Adds ``event_type`` (idempotent) and returns it; a malformed name raises ``InvalidQuery``."""
        if event_type not in self._types:
            self._types.add(check_name(event_type))
        return event_type

    def matching(self, pattern: str) -> list[str]:
        """The registered types that ``pattern`` matches, sorted."""
        match_fn = pattern_fn(check_name(pattern, pattern=True))
        return sorted(name for name in list(self._types) if match_fn(name))

    def __contains__(self, event_type: object) -> bool:
        return isinstance(event_type, str) and event_type in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._types))

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        return f"EventTypeRegistry({len(self._types)} types, {len(TAXONOMY)} from the taxonomy)"


def _always(_: Any, *__: Any) -> bool:
    return True


@lru_cache(maxsize=512)
def pattern_fn(pattern: str) -> Callable[[str], bool]:
    if pattern == "*":
        return _always
    if pattern.endswith(".*"):
        return operator.methodcaller("startswith", pattern[:-1])  # "a.b.": the kept dot makes it dot-aware
    return pattern.__eq__


def match_pattern(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` (``*``, ``a.b.*``, a type); raises ``InvalidQuery``."""
    match_fn = pattern_fn(check_name(pattern, pattern=True))
    return isinstance(event_type, str) and match_fn(event_type)
