"""Sensors: the named sources a gateway accepts signals from.

A :class:`Sensor` says where its signals come from and how to read them: a dotted ``name``
(``builtin.text_chat``), a ``domain`` (``external``, ``internal``, ``system``) and a ``modality``
(``text``, ``resource``, ...), which make its signals' event type
``signal.input.<domain>.<modality>.<name>`` (``signal.input.external.text.builtin.text_chat``: the
taxonomy's ``signal.input.external.text.*`` patterns catch it); a default ``priority`` (urgency =
priority / 255); an ``encoder`` (:mod:`neurograph.gateway.encoders`); the entity ``kind`` of the tokens
its novel signals create; ``tags``; and whether it is ``enabled``.

The :class:`SensorRegistry` starts with three built-ins (``builtin_sensors()``):

==========================  ========  =====================  =========  ==========================
name                        priority  event type prefix      kind       encoder
==========================  ========  =====================  =========  ==========================
``builtin.text_chat``       200       ``external.text``      concept    ``auto`` (semantic/hashed)
``builtin.system_monitor``  100       ``system.resource``    state      ``numeric`` 0..100 (percent)
``builtin.timer``           50        ``system.timer``       event      ``numeric`` 0..3600 s, temporal
==========================  ========  =====================  =========  ==========================

Users register their own (``registry.register("lab.thermometer", domain="external", modality=
"environment", encoder={"name": "numeric", "low": -20, "high": 40})``). Pushing to an unknown or
disabled sensor raises :class:`~neurograph.errors.InvalidSignal` naming it; ``on_change(event_type,
sensor)`` (the gateway's bus, when attached) hears ``signal.meta.sensor.registered`` / ``unregistered``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from neurograph.errors import InvalidSignal
from neurograph.events.taxonomy import MAX_TYPE_LENGTH, SEGMENT, is_event_type
from neurograph.gateway.encoders import Encoder, NumericEncoder, make_encoder
from neurograph.kinds import ENTITY_KINDS

__all__ = ["DOMAINS", "Sensor", "SensorRegistry", "builtin_sensors"]

DOMAINS = ("external", "internal", "system")  # the segment after signal.input (DESIGN §7)
_NAME_RE = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})*")  # a sensor name: one or more segments
_SEGMENT_RE = re.compile(SEGMENT)


@dataclass(frozen=True)
class Sensor:
    """A source of signals (module docstring). ``event_type`` is derived from domain, modality and name.

    Raises:
        InvalidSignal: a malformed name, domain, modality, priority, kind or encoder.
    """

    name: str  # dotted lowercase, e.g. "lab.thermometer"
    domain: str = "external"  # external | internal | system
    modality: str = "text"  # one lowercase segment: text, audio, vision, environment, resource, ...
    priority: int = 128  # default priority 0..255 of its signals
    encoder: Any = "hashed"  # an encoder, its registry name or a mapping {"name": ..., **arguments}
    kind: str = "concept"  # entity kind of the tokens its novel signals create
    tags: tuple[str, ...] = ()  # added to every signal's tags
    enabled: bool = True  # a disabled sensor refuses pushes
    description: str = ""
    label: str | None = None  # label of its signals (Engine.emit(label=...)), unless a push sets one
    event_type: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise InvalidSignal("sensor", self.name, "must be dotted lowercase segments like 'lab.probe'")
        if self.domain not in DOMAINS:
            raise InvalidSignal("domain", self.domain, f"must be one of {list(DOMAINS)}")
        if not isinstance(self.modality, str) or not _SEGMENT_RE.fullmatch(self.modality):
            raise InvalidSignal("modality", self.modality, "must be one lowercase segment like 'text'")
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not 0 <= self.priority <= 255
        ):
            raise InvalidSignal("priority", self.priority, "must be an integer in 0..255")
        if self.kind not in ENTITY_KINDS:
            raise InvalidSignal("kind", self.kind, f"must be one of {list(ENTITY_KINDS)}")
        if self.label is not None and (not isinstance(self.label, str) or not self.label):
            raise InvalidSignal("label", self.label, "must be a non-empty string or None")
        tags = (self.tags,) if isinstance(self.tags, str) else tuple(self.tags)
        if not all(isinstance(t, str) for t in tags):
            raise InvalidSignal("tags", self.tags, "must be strings")
        event_type = f"signal.input.{self.domain}.{self.modality}.{self.name}"
        if not is_event_type(event_type):  # the parts are well formed: only the length can fail
            raise InvalidSignal(
                "sensor", self.name, f"makes an event type longer than {MAX_TYPE_LENGTH} characters"
            )
        object.__setattr__(self, "tags", tags)
        object.__setattr__(self, "encoder", make_encoder(self.encoder))
        object.__setattr__(self, "event_type", event_type)

    @property
    def accepts(self) -> str:
        """What its encoder reads: ``"text"``, ``"numeric"`` or ``"vector"``."""
        return getattr(self.encoder, "accepts", "vector")

    def __repr__(self) -> str:
        state = "" if self.enabled else ", disabled"
        encoder = getattr(self.encoder, "name", type(self.encoder).__name__)
        return (
            f"Sensor({self.name!r}, {self.event_type!r}, priority={self.priority}, "
            f"encoder={encoder!r}, kind={self.kind!r}{state})"
        )


def builtin_sensors() -> list[Sensor]:
    """The three built-in sensors (module docstring), new instances."""
    return [
        Sensor(
            "builtin.text_chat",
            domain="external",
            modality="text",
            priority=200,
            encoder="auto",  # semantic (MiniLM) when installed, else hashed
            kind="concept",
            tags=("text", "chat"),
            description="chat messages; sentence meaning (semantic) or hashed term frequencies",
        ),
        Sensor(
            "builtin.system_monitor",
            domain="system",
            modality="resource",
            priority=100,
            encoder=NumericEncoder(low=0.0, high=100.0),
            kind="state",
            tags=("system", "monitor"),
            description="resource readings in percent (cpu, memory, ...), one per axis in order",
        ),
        Sensor(
            "builtin.timer",
            domain="system",
            modality="timer",
            priority=50,
            encoder=NumericEncoder(low=0.0, high=3600.0, axes=("temporal",)),
            kind="event",
            tags=("system", "timer"),
            description="timer ticks: seconds 0..3600 on the temporal axis",
        ),
    ]


class SensorRegistry:
    """Sensors by name, starting with the built-ins.

    Args:
        builtins: start with :func:`builtin_sensors`.
        on_change: ``fn(event_type, sensor)`` after a registration or removal.
    """

    def __init__(self, builtins: bool = True, on_change: Callable[[str, Sensor], Any] | None = None) -> None:
        self._sensors: dict[str, Sensor] = {}
        self.active: dict[str, Sensor] = {}  # the enabled ones: the gateway's one dict lookup per push
        self.on_change = on_change
        for sensor in builtin_sensors() if builtins else ():
            self._put(sensor)

    def _put(self, sensor: Sensor) -> None:
        self._sensors[sensor.name] = sensor
        if sensor.enabled:
            self.active[sensor.name] = sensor
        else:
            self.active.pop(sensor.name, None)

    def register(self, sensor: Sensor | str, *, replace: bool = False, **fields: Any) -> Sensor:
        """Register a :class:`Sensor` (or build one from a name and ``fields``) and return it.

        Raises:
            InvalidSignal: a malformed sensor, or a name already taken (unless ``replace``).
        """
        if isinstance(sensor, str):
            sensor = Sensor(sensor, **fields)
        elif not isinstance(sensor, Sensor):
            raise InvalidSignal("sensor", sensor, "must be a Sensor or a sensor name")
        elif fields:
            sensor = dataclasses.replace(sensor, **fields)
        if sensor.name in self._sensors and not replace:
            raise InvalidSignal("sensor", sensor.name, "is already registered (pass replace=True)")
        self._put(sensor)
        if self.on_change is not None:
            self.on_change("signal.meta.sensor.registered", sensor)
        return sensor

    def unregister(self, name: str) -> Sensor:
        """Remove a sensor and return it (raises for an unknown name)."""
        sensor = self[name]
        del self._sensors[name]
        self.active.pop(name, None)
        if self.on_change is not None:
            self.on_change("signal.meta.sensor.unregistered", sensor)
        return sensor

    def enable(self, name: str) -> Sensor:
        """Accept pushes from ``name`` again."""
        return self._set_enabled(name, True)

    def disable(self, name: str) -> Sensor:
        """Refuse pushes from ``name`` (it stays registered)."""
        return self._set_enabled(name, False)

    def _set_enabled(self, name: str, enabled: bool) -> Sensor:
        sensor = dataclasses.replace(self[name], enabled=enabled)
        self._put(sensor)
        return sensor

    def get(self, name: str) -> Sensor:
        """The enabled sensor ``name``.

        Raises:
            InvalidSignal: an unknown or disabled sensor.
        """
        sensor = self.active.get(name)
        if sensor is None:
            if name in self._sensors:
                raise InvalidSignal("sensor", name, "is disabled (enable it first)")
            raise InvalidSignal("sensor", name, f"is not registered; registered: {sorted(self._sensors)}")
        return sensor

    def encoder(self, name: str) -> Encoder:
        """The encoder of the enabled sensor ``name``."""
        return self.get(name).encoder

    def __getitem__(self, name: str) -> Sensor:
        if name not in self._sensors:
            raise InvalidSignal("sensor", name, f"is not registered; registered: {sorted(self._sensors)}")
        return self._sensors[name]

    def __contains__(self, name: object) -> bool:
        return name in self._sensors

    def __iter__(self) -> Iterator[Sensor]:
        return iter(sorted(self._sensors.values(), key=lambda s: (-s.priority, s.name)))

    def __len__(self) -> int:
        return len(self._sensors)

    def __repr__(self) -> str:
        names = ", ".join(s.name + ("" if s.enabled else " (disabled)") for s in self)
        return f"SensorRegistry({len(self)} sensors: {names})"
