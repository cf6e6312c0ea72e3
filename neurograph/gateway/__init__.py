"""The gateway (DESIGN §1, L3): sensors, encoders and the signal events they make.

A :class:`Gateway` takes readings from registered sensors (:class:`SensorRegistry`, built-ins
``builtin.text_chat``, ``builtin.system_monitor``, ``builtin.timer``), encodes them into the 8-D space
with the sensor's encoder (:mod:`neurograph.gateway.encoders`: ``hashed``, ``sentiment``, ``numeric``,
``passthrough``, and ``semantic`` with the optional MiniLM package) and returns
:class:`SignalEvent` / :class:`SignalBatch` values ready for ``Engine.emit`` / ``emit_batch``.
"""

from __future__ import annotations

from neurograph.gateway.encoders import (
    ENCODERS,
    Encoder,
    HashedTermEncoder,
    NumericEncoder,
    PassthroughEncoder,
    SentimentEncoder,
    make_encoder,
    stable_digest,
)
from neurograph.gateway.gateway import Gateway
from neurograph.gateway.sensors import DOMAINS, Sensor, SensorRegistry, builtin_sensors
from neurograph.gateway.signals import SignalBatch, SignalEvent

__all__ = [
    "DOMAINS",
    "ENCODERS",
    "Encoder",
    "Gateway",
    "HashedTermEncoder",
    "NumericEncoder",
    "PassthroughEncoder",
    "Sensor",
    "SensorRegistry",
    "SentimentEncoder",
    "SignalBatch",
    "SignalEvent",
    "builtin_sensors",
    "make_encoder",
    "stable_digest",
]
