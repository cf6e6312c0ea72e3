"""Signal events: what the gateway hands to the engine, one (:class:`SignalEvent`) or a batch.

A signal event is a sensor's reading made ready for ``Engine.emit``: its ``event_type``
(``signal.input.<domain>.<modality>.<sensor>``), its encoded ``vector`` (8 float32), ``priority``
(0..255) and ``urgency`` (priority / 255), the gateway ``tick`` (one more per push), a ``timestamp``
(``time.time()``), ``tags`` (the sensor's, then the caller's), the raw ``payload`` (the text, number(s)
or vector), the entity ``kind`` a novel token gets, and who sent it (``user_id``, ``chat_id``) with the
caller's ``metadata``. Treat them as read-only values; ``to_dict()`` is the JSON-ready form.

A :class:`SignalBatch` holds ``B`` events of one sensor column-wise (``vectors [B, 8]``, ticks ``tick0 ..
tick0 + B - 1``); ``batch[i]`` is row ``i`` as a :class:`SignalEvent`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["EMPTY", "SignalBatch", "SignalEvent"]

EMPTY: Mapping[str, Any] = MappingProxyType({})  # metadata of a signal sent without any


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(slots=True, eq=False)
class SignalEvent:
    """One signal, ready for ``Engine.emit(event_type, vector, priority, kind=kind)``.

    Shapes:
        vector: ``[8]`` float32.
    """

    tick: int  # gateway tick: grows by one per push
    event_type: str  # signal.input.<domain>.<modality>.<sensor>
    sensor: str
    vector: np.ndarray  # (8,) float32
    priority: int  # 0..255
    urgency: float  # priority / 255
    timestamp: float  # time.time() of the push
    tags: tuple[str, ...]
    payload: Any  # the raw reading: text, number(s) or vector
    kind: str  # entity kind of the token a novel signal creates
    user_id: Any = None
    chat_id: Any = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    label: str | None = None  # the token's label (Engine.emit(label=...)): the push's or the sensor's

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-safe when the payload and metadata are)."""
        return {
            "tick": self.tick,
            "event_type": self.event_type,
            "sensor": self.sensor,
            "vector": self.vector.tolist(),
            "priority": self.priority,
            "urgency": self.urgency,
            "timestamp": self.timestamp,
            "tags": list(self.tags),
            "payload": _jsonable(self.payload),
            "kind": self.kind,
            "user_id": self.user_id,
            "chat_id": self.chat_id,
            "metadata": dict(self.metadata),
            "label": self.label,
        }

    def __repr__(self) -> str:
        return (
            f"SignalEvent(tick={self.tick}, event_type={self.event_type!r}, priority={self.priority}, "
            f"urgency={self.urgency:.3f}, vector=[{', '.join(f'{v:.3f}' for v in self.vector)}])"
        )


@dataclass(slots=True, eq=False)
class SignalBatch:
    """``B`` signals of one sensor, column-wise; ``batch[i]`` is row ``i`` as a :class:`SignalEvent`.

    Shapes:
        vectors: ``[B, 8]`` float32; priorities: ``[B]`` int64; payloads: ``B`` raw readings.
    """

    tick0: int  # tick of row 0; row i has tick0 + i
    event_type: str
    sensor: str
    vectors: np.ndarray  # (B, 8) float32
    priorities: np.ndarray  # (B,) int64
    timestamp: float
    tags: tuple[str, ...]
    payloads: Sequence[Any]
    kind: str
    user_id: Any = None
    chat_id: Any = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    labels: str | Sequence[str | None] | None = None  # one for all rows or one per row

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def ticks(self) -> np.ndarray:
        """``[B]`` gateway ticks."""
        return np.arange(self.tick0, self.tick0 + len(self), dtype=np.int64)

    @property
    def urgency(self) -> np.ndarray:
        """``[B]`` priority / 255."""
        return self.priorities / 255.0

    def __getitem__(self, i: int) -> SignalEvent:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a batch of {n}")
        i %= n
        priority = int(self.priorities[i])
        return SignalEvent(
            self.tick0 + i,
            self.event_type,
            self.sensor,
            self.vectors[i],
            priority,
            priority / 255.0,
            self.timestamp,
            self.tags,
            self.payloads[i],
            self.kind,
            self.user_id,
            self.chat_id,
            self.metadata,
            self.labels if self.labels is None or isinstance(self.labels, str) else self.labels[i],
        )

    def __iter__(self) -> Iterator[SignalEvent]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return (
            f"SignalBatch(rows={len(self)}, event_type={self.event_type!r}, "
            f"ticks={self.tick0}..{self.tick0 + len(self) - 1})"
        )
