"""The gateway: readings from sensors in, signal events out.

``push_text``, ``push_numeric`` and ``push_vector`` take one reading from a registered, enabled sensor,
encode it with the sensor's encoder (``push_vector`` takes 8 numbers as they are) and return a
:class:`~neurograph.gateway.signals.SignalEvent`: event type ``signal.input.<domain>.<modality>.<sensor>``,
priority (the sensor's unless given) and urgency = priority / 255, tags, and the gateway ``tick``, which
grows by one per push (a batch of ``B`` takes ``B`` ticks). ``push_texts`` / ``push_numerics`` /
``push_vectors`` do the same for a batch of one sensor and return a
:class:`~neurograph.gateway.signals.SignalBatch` (the hashed encoder encodes a batch vectorised).

The gateway does not emit: :class:`~neurograph.pipeline.SignalPipeline` hands its events to the engine.
Errors (unknown or disabled sensor, a reading its encoder cannot read, a bad priority) raise
:class:`~neurograph.errors.InvalidSignal` before the tick moves. With a bus attached, sensor
registrations are published on its ``status`` channel (``signal.meta.sensor.registered`` /
``unregistered``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from neurograph.errors import InvalidSignal
from neurograph.events import EventBus
from neurograph.gateway.encoders import PassthroughEncoder
from neurograph.gateway.sensors import Sensor, SensorRegistry
from neurograph.gateway.signals import EMPTY, SignalBatch, SignalEvent

__all__ = ["Gateway"]

_VECTOR = PassthroughEncoder()  # push_vector's reader: 8 finite numbers as they are
_URGENCY = tuple(p / 255.0 for p in range(256))  # priority -> urgency, precomputed


class Gateway:
    """Turns sensor readings into signal events (module docstring).

    Args:
        sensors: a :class:`SensorRegistry` (a new one with the built-ins by default).
        bus: where sensor registrations are published (``attach`` sets it later).
        text_encoder: the encoder of the built-in chat sensor instead of its default ``"auto"`` (MiniLM
            where installed), e.g. ``"hashed"`` for fast, model-free vectors.
    """

    def __init__(
        self,
        sensors: SensorRegistry | None = None,
        *,
        bus: EventBus | None = None,
        text_encoder: Any = None,
    ) -> None:
        self.sensors = sensors if sensors is not None else SensorRegistry()
        if text_encoder is not None:  # e.g. "hashed": fast, model-free vectors for the chat sensor
            chat = self.sensors.get("builtin.text_chat")
            self.sensors.register(dataclasses.replace(chat, encoder=text_encoder), replace=True)
        self.sensors.on_change = self._sensor_changed
        self.bus = bus
        self.tick = 0  # pushes so far; the next signal gets this tick
        self.counts: dict[str, int] = {}  # signals per sensor

    def attach(self, bus: EventBus) -> None:
        """Publish sensor registrations on ``bus`` from now on (the pipeline attaches the engine's)."""
        self.bus = bus

    def _sensor_changed(self, event_type: str, sensor: Sensor) -> None:
        if self.bus is not None:
            self.bus.publish(
                "status", event_type, lambda: {"sensor": sensor.name, "event_type": sensor.event_type}
            )

    def warm(self) -> None:
        """Load what the enabled sensors' encoders need before the first reading (the MiniLM model of the
        ``semantic`` one): :class:`~neurograph.pipeline.SignalPipeline` calls it when entered."""
        for s in self.sensors:
            if s.enabled:
                getattr(s.encoder, "warm", lambda: None)()

    def register_sensor(self, sensor: Sensor | str, **fields: Any) -> Sensor:
        """Shortcut for ``gateway.sensors.register(...)``."""
        return self.sensors.register(sensor, **fields)

    # --- one reading ---------------------------------------------------------------------------------
    def push_text(
        self,
        text: str,
        *,
        sensor: str = "builtin.text_chat",
        priority: int | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        user_id: Any = None,
        chat_id: Any = None,
        label: str | None = None,
    ) -> SignalEvent:
        """A text reading (a chat message, a command, ...) as a signal event; ``label`` (else the
        sensor's) becomes the label of the signal's token.

        Raises:
            InvalidSignal: unknown or disabled sensor, a sensor that does not read text, a non-string
                text, a priority outside 0..255.
        """
        s = self._sensor(sensor, "text")
        x = s.encoder.encode(text)
        return self._event(s, x, text, priority, tags, metadata, user_id, chat_id, label)

    def push_numeric(
        self,
        value: float | Sequence[float],
        *,
        sensor: str = "builtin.system_monitor",
        priority: int | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        user_id: Any = None,
        chat_id: Any = None,
        label: str | None = None,
    ) -> SignalEvent:
        """A number (or a few) read by a numeric sensor, as a signal event (errors as ``push_text``)."""
        s = self._sensor(sensor, "numeric")
        x = s.encoder.encode(value)
        return self._event(s, x, value, priority, tags, metadata, user_id, chat_id, label)

    def push_vector(
        self,
        vector: Any,
        *,
        sensor: str,
        priority: int | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        user_id: Any = None,
        chat_id: Any = None,
        label: str | None = None,
    ) -> SignalEvent:
        """8 numbers taken as they are (no encoder) from ``sensor``, as a signal event."""
        s = self._sensor(sensor, None)
        x = _VECTOR.encode(vector)
        return self._event(s, x, vector, priority, tags, metadata, user_id, chat_id, label)

    def _sensor(self, name: str, accepts: str | None) -> Sensor:
        s = self.sensors.active.get(name)
        if s is None:
            s = self.sensors.get(name)  # raises, naming what is wrong
        if accepts is not None and s.accepts != accepts:
            raise InvalidSignal("sensor", name, f"reads {s.accepts} readings, not {accepts}")
        return s

    def _priority(self, s: Sensor, priority: Any) -> int:
        if priority is None:
            return s.priority
        if priority.__class__ is int and 0 <= priority <= 255:
            return priority
        if (
            isinstance(priority, (int, np.integer))
            and not isinstance(priority, bool)
            and 0 <= priority <= 255
        ):
            return int(priority)
        raise InvalidSignal("priority", priority, "must be an integer in 0..255")

    def _event(
        self,
        s: Sensor,
        x: np.ndarray,
        payload: Any,
        priority: Any,
        tags: Sequence[str],
        metadata: Mapping[str, Any] | None,
        user_id: Any,
        chat_id: Any,
        label: str | None = None,
    ) -> SignalEvent:
        p = self._priority(s, priority)
        tick = self.tick
        self.tick = tick + 1
        self.counts[s.name] = self.counts.get(s.name, 0) + 1
        return SignalEvent(
            tick,
            s.event_type,
            s.name,
            x,
            p,
            _URGENCY[p],
            time.time(),
            (s.tags + ((tags,) if isinstance(tags, str) else tuple(tags))) if tags else s.tags,
            payload,
            s.kind,
            user_id,
            chat_id,
            metadata if metadata else EMPTY,
            label if label is not None else s.label,
        )

    # --- a batch of readings -------------------------------------------------------------------------
    def push_texts(
        self, texts: Sequence[str], *, sensor: str = "builtin.text_chat", **options: Any
    ) -> SignalBatch:
        """``B`` texts of one sensor as a :class:`SignalBatch` (options as ``push_text``; ``priority`` may
        also be ``B`` ints)."""
        s = self._sensor(sensor, "text")
        texts = texts if isinstance(texts, list) else list(texts)
        return self._batch(s, s.encoder.encode_batch(texts), texts, **options)

    def push_numerics(
        self, values: Sequence[Any], *, sensor: str = "builtin.system_monitor", **options: Any
    ) -> SignalBatch:
        """``B`` numeric readings of one sensor as a :class:`SignalBatch`."""
        s = self._sensor(sensor, "numeric")
        values = list(values)
        return self._batch(s, s.encoder.encode_batch(values), values, **options)

    def push_vectors(self, vectors: Any, *, sensor: str, **options: Any) -> SignalBatch:
        """``[B, 8]`` numbers of one sensor, as they are, as a :class:`SignalBatch`."""
        s = self._sensor(sensor, None)
        x = _VECTOR.encode_batch(vectors)
        return self._batch(s, x, list(x), **options)

    def _batch(
        self,
        s: Sensor,
        x: np.ndarray,
        payloads: Sequence[Any],
        *,
        priority: Any = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        user_id: Any = None,
        chat_id: Any = None,
        labels: str | Sequence[str | None] | None = None,
    ) -> SignalBatch:
        b = x.shape[0]
        if priority is None or isinstance(priority, (int, np.integer)):
            pri = np.full(b, self._priority(s, priority), np.int64)
        else:
            pri = np.asarray(priority)
            if pri.shape != (b,) or pri.dtype.kind not in "iu" or ((pri < 0) | (pri > 255)).any():
                raise InvalidSignal("priority", priority, f"must be one int or {b} ints in 0..255")
            pri = pri.astype(np.int64)
        tick0 = self.tick
        self.tick = tick0 + b
        self.counts[s.name] = self.counts.get(s.name, 0) + b
        return SignalBatch(
            tick0,
            s.event_type,
            s.name,
            x,
            pri,
            time.time(),
            (s.tags + ((tags,) if isinstance(tags, str) else tuple(tags))) if tags else s.tags,
            payloads,
            s.kind,
            user_id,
            chat_id,
            metadata if metadata else EMPTY,
            labels if labels is not None else s.label,
        )

    def stats(self) -> dict[str, Any]:
        """The tick and the signals per sensor."""
        return {"tick": self.tick, "signals": dict(self.counts), "sensors": len(self.sensors)}

    def __repr__(self) -> str:
        return f"Gateway(tick={self.tick}, sensors={[s.name for s in self.sensors]})"
