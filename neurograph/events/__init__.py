"""Events: the vocabulary (channels, :class:`Event`, the taxonomy of types, patterns), filters, the bus.

- :mod:`neurograph.events.taxonomy`: channels, the :class:`Event` record, :data:`TAXONOMY`, the one rule
  for a valid event type (:func:`is_event_type`), type patterns (``*``, ``a.b.*``).
- :mod:`neurograph.events.filters`: MongoDB-style filter dicts compiled once (:func:`compile_filter`).
- :mod:`neurograph.events.bus`: :class:`EventBus` and :class:`Subscription` (callbacks, async iterators).
"""

from neurograph.events.bus import EventBus, Subscription
from neurograph.events.filters import Filter, Spec, compile_filter
from neurograph.events.taxonomy import (
    CHANNELS,
    MAX_TYPE_LENGTH,
    TAXONOMY,
    Event,
    EventTypeRegistry,
    is_event_type,
    match_pattern,
)

__all__ = [
    "CHANNELS",
    "MAX_TYPE_LENGTH",
    "TAXONOMY",
    "Event",
    "EventBus",
    "EventTypeRegistry",
    "Filter",
    "Spec",
    "Subscription",
    "compile_filter",
    "is_event_type",
    "match_pattern",
]
