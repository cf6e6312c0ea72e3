"""The server: one ASGI app streaming an engine over ``/ws`` and serving REST, health and metrics.

``neurograph serve`` runs it on uvicorn; in code::

    from neurograph.server import ServerConfig, create_app
    app = create_app(engine, ServerConfig(metrics_interval=1.0))   # any ASGI server runs it

Modules: :mod:`~neurograph.server.config` (settings, the bind rule), :mod:`~neurograph.server.auth`
(API keys, JWTs, roles), :mod:`~neurograph.server.limits` (token buckets), :mod:`~neurograph.server.wire`
(JSON and msgpack frames), :mod:`~neurograph.server.hub` (sessions, fan-out, reconnection),
:mod:`~neurograph.server.metrics` (Prometheus), :mod:`~neurograph.server.state` (the app's state and
emit path), :mod:`~neurograph.server.ws` (the protocol), :mod:`~neurograph.server.rest` (REST, probes),
:mod:`~neurograph.server.app` (``create_app``), :mod:`~neurograph.server.run` (``serve``). The protocol
and the settings are documented in ``docs/server.md``.
"""

from neurograph.server.app import create_app
from neurograph.server.auth import ROLES, AuthError, Forbidden, Principal, make_token, new_api_key
from neurograph.server.config import ServerConfig, check_bind, load_config
from neurograph.server.run import serve

__all__ = [
    "ROLES",
    "AuthError",
    "Forbidden",
    "Principal",
    "ServerConfig",
    "check_bind",
    "create_app",
    "load_config",
    "make_token",
    "new_api_key",
    "serve",
]
