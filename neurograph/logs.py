"""Structured logs: JSON lines with correlation ids, or readable lines on a terminal (structlog).

neurograph's modules log through the standard :mod:`logging` module under the ``neurograph`` logger (the
engine at DEBUG for every emit, the server for requests, sockets and broadcasts). :func:`configure` puts
a structlog ``ProcessorFormatter`` on that logger: every record becomes one JSON object per line (keys
``event``, ``level``, ``logger``, ``timestamp`` and the record's ``extra`` fields) carrying the
``correlation_id`` bound by :func:`neurograph.telemetry.correlation`, or, on a terminal, a coloured
human line. ``structlog`` comes with the ``server`` extra.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from neurograph.telemetry import correlation_id

__all__ = ["configure", "get_logger"]

_HANDLER_NAME = "neurograph.logs"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def get_logger(name: str) -> logging.Logger:
    """The standard logger ``neurograph.<name>`` (``name`` may already start with ``neurograph``)."""
    return logging.getLogger(name if name.startswith("neurograph") else f"neurograph.{name}")


def _add_context(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The correlation id of the context, and the ``extra`` fields of a standard record."""
    record = event.get("_record")
    if record is not None:
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                event.setdefault(key, value)
    cid = correlation_id()
    if cid is not None:
        event.setdefault("correlation_id", cid)
    return event


def configure(
    json: bool | None = None, level: int | str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send neurograph's logs to ``stream`` (stderr) as JSON lines (``json=True``; the default when the
    stream is not a terminal) or readable lines; returns the handler (configure again to replace it).

    Raises:
        ImportError: structlog is not installed (``pip install 'neurograph[server]'``).
    """
    import structlog

    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            _add_context,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger("neurograph")
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
