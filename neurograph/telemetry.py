"""Tracing and correlation ids: OpenTelemetry spans around the engine's work, one id per request.

**Spans.** :func:`span` opens an OpenTelemetry span named ``neurograph.<operation>`` (``emit``,
``emit_batch``, ``step``, ``hierarchy.rebuild``; the server adds ``broadcast`` and its requests) when the
``opentelemetry-api`` package is importable, and does nothing otherwise. Without a configured tracer
provider the API's own no-op tracer is used, so nothing is recorded or exported until the application
configures one (e.g. ``opentelemetry-sdk`` with an OTLP or in-memory exporter, or
:func:`configure_tracing`). Spans nest through Python's context variables: ``Engine.call`` runs its work on
the engine's thread inside a copy of the caller's context, so an emit requested by a web handler is a
child of the handler's span.

**Correlation ids.** :func:`correlation` binds an id (a request's, a socket's, an emit's) to the current
context; :func:`correlation_id` reads it. The engine stamps it on every span and on the events it
publishes (``data["correlation_id"]``), and structured logs carry it (:mod:`neurograph.logs`), so one id
follows an emit from the request through the engine to the broadcast of its event.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["bind_correlation", "configure_tracing", "correlation", "correlation_id", "new_correlation_id"]
__all__ += ["span"]

_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "neurograph_correlation", default=None
)

_PROVIDER: list[Any] = [None]  # the provider of configure_tracing; None: the API's global one

try:  # the API is light; the SDK (exporters) is the application's choice
    from opentelemetry import trace as _trace

    _NO_PROVIDER: tuple[type, ...] = (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)
except ImportError:  # pragma: no cover - exercised where opentelemetry is absent
    _trace = None  # type: ignore[assignment]
    _NO_PROVIDER = ()


def new_correlation_id() -> str:
    """A fresh id: 16 hex digits."""
    return uuid.uuid4().hex[:16]


def correlation_id() -> str | None:
    """The correlation id bound to the current context (``None``: none)."""
    return _CORRELATION.get()


def bind_correlation(cid: str | None = None) -> str:
    """Bind ``cid`` (a new id when ``None``) for the rest of the current context, e.g. a websocket
    connection's task; returns it."""
    cid = cid or new_correlation_id()
    _CORRELATION.set(cid)
    return cid


@contextlib.contextmanager
def correlation(cid: str | None = None) -> Iterator[str]:
    """Bind ``cid`` (a new id when ``None``) for the ``with`` block; yields it."""
    cid = cid or new_correlation_id()
    token = _CORRELATION.set(cid)
    try:
        yield cid
    finally:
        _CORRELATION.reset(token)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """An OpenTelemetry span ``neurograph.<name>`` with ``attributes`` (and the correlation id), or a no-op
    without the API. Yields the span (``None`` without the API); ``span.set_attribute`` adds results."""
    provider = _PROVIDER[0]
    if provider is None and (_trace is None or isinstance(_trace.get_tracer_provider(), _NO_PROVIDER)):
        yield None  # nothing would record it: no span at all (the hot emit path pays one check)
        return
    tracer = (provider or _trace).get_tracer("neurograph")
    cid = _CORRELATION.get()
    if cid is not None:
        attributes["neurograph.correlation_id"] = cid
    with tracer.start_as_current_span(f"neurograph.{name}", attributes=attributes or None) as s:
        yield s


def configure_tracing(exporter: Any = None, service_name: str = "neurograph", enabled: bool = True) -> Any:
    """Make neurograph's spans go to an SDK tracer provider exporting to ``exporter`` (an OTLP or console
    exporter, or the SDK's ``InMemorySpanExporter``); returns the provider. It is neurograph's own (the
    process-wide provider, which OpenTelemetry lets be set once, is left alone); calling again replaces
    it, ``exporter=None`` with ``enabled=False`` goes back to the global one. Needs ``opentelemetry-sdk``.

    Raises:
        ImportError: the SDK is not installed.
    """
    if not enabled:
        _PROVIDER[0] = None
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _PROVIDER[0] = provider
    return provider
