"""``serve(config)``: run the app on uvicorn (``neurograph serve`` calls it).

uvicorn does the transport work: permessage-deflate (``ws_per_message_deflate``), keep-alive pings
(``ws_ping_interval`` / ``ws_ping_timeout``) and the websocket message size limit (``ws_max_size``, close
1009); nothing of it is re-implemented here. The bind rule (:func:`~neurograph.server.config.check_bind`)
is checked before anything starts. neurograph's own log lines (requests, emits at DEBUG, broadcasts)
go to stderr through :func:`neurograph.logs.configure`: JSON lines, or readable lines on a terminal.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from neurograph.engine import Engine
from neurograph.server.app import create_app
from neurograph.server.config import ServerConfig, check_bind

__all__ = ["serve", "uvicorn_config"]


def uvicorn_config(app: Any, config: ServerConfig, **overrides: Any) -> uvicorn.Config:
    """The uvicorn settings of ``config`` for ``app`` (the transport limits live here)."""
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "ws_max_size": config.max_message_bytes,
        "ws_ping_interval": config.ping_interval,
        "ws_ping_timeout": config.ping_timeout,
        "ws_per_message_deflate": True,
        "lifespan": "on",
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": 5,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(config: ServerConfig | None = None, engine: Engine | None = None, **uvicorn_options: Any) -> None:
    """Serve ``engine`` (or one made from ``config``) until interrupted.

    Args:
        config: the settings (default: loopback, port 8000, an engine in memory).
        engine: an engine to serve; ``None``: made from ``config.engine`` and ``config.path``.
        **uvicorn_options: passed to :class:`uvicorn.Config` (e.g. ``access_log=False``).

    Raises:
        InvalidArgument: a non-loopback ``host`` without a JWT secret or API keys.
    """
    config = config or ServerConfig()
    check_bind(config)
    try:  # JSON lines with correlation ids (readable lines on a terminal): neurograph.logs
        from neurograph.logs import configure

        configure(level=config.log_level.upper())
    except ImportError:  # structlog missing: the standard library's logging as it is
        logging.getLogger("neurograph").setLevel(config.log_level.upper())
    server = uvicorn.Server(uvicorn_config(create_app(engine, config), config, **uvicorn_options))
    server.run()
