"""The ASGI app: ``create_app(engine, config)`` gives a FastAPI app serving ``/ws``, ``/api/v1``,
``/health/*`` and ``/metrics`` for one engine (DESIGN §9).

Every HTTP request gets a correlation id (the client's ``X-Correlation-ID`` header, else a new one, sent
back in the response's header), an OpenTelemetry span ``neurograph.http`` and a ``request`` log line
(:mod:`neurograph.telemetry`, :mod:`neurograph.logs`); the engine's spans and events of the request carry
the same id.

The engine lives in the same process and does its work on its own worker thread
(:meth:`Engine.call <neurograph.engine.Engine.call>`): the event loop only parses, routes and writes. An app
given an engine leaves it open at shutdown; an app that made its own (from ``config.engine`` and
``config.path``) closes it, which snapshots a persistent store. The app's state is a
:class:`~neurograph.server.state.Server` (``app.state.server``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from neurograph.engine import Engine
from neurograph.server.config import ServerConfig
from neurograph.server.rest import install_rest
from neurograph.server.state import Server
from neurograph.server.ws import install_ws
from neurograph.telemetry import correlation, span

__all__ = ["CORRELATION_HEADER", "create_app"]

CORRELATION_HEADER = "X-Correlation-ID"
_log = logging.getLogger("neurograph.server")


def create_app(engine: Engine | None = None, config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app serving ``engine`` (module docstring).

    Args:
        engine: the engine to serve (left open at shutdown); ``None``: made from ``config`` at startup.
        config: the settings; ``None``: :class:`ServerConfig` defaults (loopback, anonymous allowed).

    Returns:
        A FastAPI app; ``app.state.server`` is its :class:`Server`.
    """
    config = config or ServerConfig()
    server = Server(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="neurograph",
        version=_version(),
        summary="Signals in, tokens and fields out: REST, a websocket streamer, health and metrics.",
        lifespan=lifespan,
    )
    app.state.server = server

    @app.middleware("http")
    async def trace_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get(CORRELATION_HEADER, "")
        cid = given if 0 < len(given) <= 64 and given.isprintable() else None
        t0 = time.perf_counter()
        with correlation(cid) as cid, span("http", method=request.method, path=request.url.path) as s:
            response = await call_next(request)
            if s is not None:
                s.set_attribute("http.status_code", response.status_code)
        response.headers[CORRELATION_HEADER] = cid
        if _log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - t0) * 1e3
            what = {"method": request.method, "path": request.url.path, "status": response.status_code}
            _log.info("request", extra={**what, "ms": round(ms, 3), "correlation_id": cid})
        return response

    install_rest(app, server)
    install_ws(app, server)
    return app


def _version() -> str:
    import neurograph

    return neurograph.__version__
