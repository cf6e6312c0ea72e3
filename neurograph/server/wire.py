"""The wire forms of the protocol: JSON text frames (orjson) and msgpack binary frames.

A client picks its format when it connects (``/ws?format=msgpack``); a binary frame from a client is
always read as msgpack, a text frame as JSON. Every message is a map with a ``type``.

Channel events are serialised **once** however many clients receive them: the publisher's thread encodes
``{channel, event_type, timestamp, data}`` to JSON (:class:`EventItem`), the event loop prefixes
``type`` and the event ``id`` (a server-wide sequence number, used to resume after a reconnection); the
msgpack form is made from the same record on first use. When a client has fallen behind, the events
waiting for it go out in one frame ``{"type": "events", "events": [event, ...]}`` (each element exactly
the single-event message): fewer frames, no added latency when it keeps up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
import orjson

__all__ = ["FORMATS", "EventItem", "WireError", "decode", "dumps", "encode", "events_frame"]

FORMATS = ("json", "msgpack")
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_EVENTS_HEAD_JSON = b'{"type":"events","events":['
_EVENTS_HEAD_MSGPACK = msgpack.packb({"type": "events"})[1:] + msgpack.packb("events")  # without map header


class WireError(ValueError):
    """A frame that is not a protocol message (bad JSON or msgpack, not a map)."""


def _default(obj: Any) -> Any:
    """Types orjson does not know: sets, numpy scalars not caught by the numpy option, tensors."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(obj)


def dumps(obj: Any) -> bytes:
    """JSON bytes (numpy arrays and scalars included; other unknown objects as ``str``)."""
    return orjson.dumps(obj, default=_default, option=_OPTS)


def _plain(obj: Any) -> Any:
    """A msgpack-safe copy of a JSON-able object (through orjson, which knows numpy)."""
    return orjson.loads(dumps(obj))


def encode(message: Mapping[str, Any], fmt: str) -> bytes:
    """One protocol message in ``fmt`` (``"json"`` or ``"msgpack"``)."""
    if fmt == "json":
        return dumps(message)
    try:
        return msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return msgpack.packb(_plain(message), use_bin_type=True)


def decode(frame: str | bytes) -> dict[str, Any]:
    """A client frame as a message: text is JSON, binary is msgpack.

    Raises:
        WireError: not decodable, or not a map with a string ``type``.
    """
    try:
        message = orjson.loads(frame) if isinstance(frame, str) else msgpack.unpackb(frame, raw=False)
    except Exception as exc:  # msgpack raises a family of errors (ExtraData, FormatError, StackError...)
        what = "JSON" if isinstance(frame, str) else "msgpack"
        raise WireError(f"invalid {what}: {type(exc).__name__}") from exc
    if not isinstance(message, dict):
        raise WireError(f"a message must be a map, got {type(message).__name__}")
    if not isinstance(message.get("type"), str):
        raise WireError("a message needs a string 'type'")
    return message


class EventItem:
    """One channel event, serialised once for every client (module docstring).

    Args:
        channel: the channel.
        event_type: the dotted event type.
        timestamp: ``time.time()`` of the publish.
        data: the event's data (JSON-able).
    """

    __slots__ = ("_json", "_msgpack", "body", "channel", "id", "record")

    def __init__(self, channel: str, event_type: str, timestamp: float, data: Mapping[str, Any]) -> None:
        self.channel = channel
        self.record = {"channel": channel, "event_type": event_type, "timestamp": timestamp, "data": data}
        self.body = dumps(self.record)  # b'{"channel":...}'
        self.id = 0  # set on the event loop (dispatch), in delivery order
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def json(self) -> bytes:
        """The message ``{type: "event", id, channel, event_type, timestamp, data}`` as JSON."""
        if self._json is None:
            self._json = b'{"type":"event","id":%d,%b' % (self.id, self.body[1:])
        return self._json

    def msgpack(self) -> bytes:
        """The same message as msgpack."""
        if self._msgpack is None:
            self._msgpack = msgpack.packb(
                {"type": "event", "id": self.id, **_plain(self.record)}, use_bin_type=True
            )
        return self._msgpack

    def frame(self, fmt: str) -> bytes:
        return self.json() if fmt == "json" else self.msgpack()


def events_frame(items: Sequence[EventItem], fmt: str) -> bytes:
    """One frame carrying ``items``: the event message itself for one, an ``events`` message for more."""
    if len(items) == 1:
        return items[0].frame(fmt)
    if fmt == "json":
        return b"%b%b]}" % (_EVENTS_HEAD_JSON, b",".join([item.json() for item in items]))
    packer = msgpack.Packer(use_bin_type=True)
    head = packer.pack_map_header(2) + _EVENTS_HEAD_MSGPACK + packer.pack_array_header(len(items))
    return head + b"".join([item.msgpack() for item in items])
