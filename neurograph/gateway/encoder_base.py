"""What every encoder is: the :class:`Encoder` protocol, a base with the shared behaviour, the text check.

Kept apart from :mod:`neurograph.gateway.encoders` (the built-in encoders and their registry) so that an
encoder in its own module (:mod:`neurograph.gateway.semantic`, loaded only when used) builds on it without
an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from neurograph.errors import InvalidSignal
from neurograph.space import DIM

__all__ = ["Encoder", "EncoderBase", "check_text"]


@runtime_checkable
class Encoder(Protocol):
    """What a sensor's encoder provides: ``encode(value) -> [8]`` and ``encode_batch(values) -> [B, 8]``
    (float32), ``accepts`` (``"text"``, ``"numeric"`` or ``"vector"``) and ``name``."""

    name: ClassVar[str]
    accepts: ClassVar[str]

    def encode(self, value: Any) -> np.ndarray: ...

    def encode_batch(self, values: Sequence[Any]) -> np.ndarray: ...


class EncoderBase:
    """Shared behaviour: ``__call__`` is ``encode``; the default batch stacks single encodings."""

    def __call__(self, value: Any) -> np.ndarray:
        return self.encode(value)  # type: ignore[attr-defined]

    def warm(self) -> None:
        """Load now what the first ``encode`` would load (a model, a projection); a no-op here."""

    def encode_batch(self, values: Sequence[Any]) -> np.ndarray:
        """``[B, 8]`` float32, row ``i`` = ``encode(values[i])``."""
        rows = [self.encode(v) for v in values]  # type: ignore[attr-defined]
        return np.stack(rows) if rows else np.zeros((0, DIM), np.float32)


def check_text(text: Any, index: int | None = None) -> str:
    """``text`` if it is a string, else ``InvalidSignal(field='text')``."""
    if not isinstance(text, str):
        raise InvalidSignal("text", text, "must be a string", index)
    return text
