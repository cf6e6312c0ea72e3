"""Server settings: one frozen :class:`ServerConfig`, read from a YAML or JSON file or built in code.

Every knob has a default that is safe on a developer's machine: the server binds ``127.0.0.1``, allows
anonymous clients only there, and refuses another address unless a JWT secret or an API key is configured
(:func:`check_bind`). Secrets never live in code: the JWT secret comes from the config file or from the
environment variable named by ``jwt_secret_env`` (``NEUROGRAPH_JWT_SECRET`` by default); API keys are
stored only as salted hashes (:func:`neurograph.server.auth.new_api_key` makes a key and its record).

A config file holds the fields below at its top level, plus ``engine`` (keyword arguments of
:class:`~neurograph.engine.Engine`: ``device``, ``cdna`` (a profile name or a mapping of CDNA fields),
``seed``, ``durability``, ...)::

    host: 127.0.0.1
    port: 8000
    metrics_interval: 5.0
    api_keys:
      - {id: k1a2b3, role: bot, user_id: bot-1, salt: ..., hash: ..., iterations: 100000}
    rate_limits: {emit: [600, 200]}
    engine: {cdna: default, durability: full}
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurograph.errors import InvalidArgument

__all__ = ["DEFAULT_RATE_LIMITS", "ServerConfig", "check_bind", "is_loopback", "load_config"]

# token buckets per message type: (capacity, refill per second), DESIGN §9; other types use "default"
DEFAULT_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "ping": (120, 2),
    "subscribe": (30, 1),
    "unsubscribe": (30, 1),
    "default": (60, 10),
}
MIN_SECRET_BYTES = 32  # a shorter HS256 secret is refused (RFC 7518 §3.2 asks for >= 256 bits)


@dataclass(frozen=True)
class ServerConfig:
    """Settings of the ASGI app and of ``neurograph serve``.

    Args:
        host: address to bind; anything but a loopback address needs ``jwt_secret`` or ``api_keys``.
        port: TCP port.
        path: store directory of the engine (``Engine(path=...)``); ``None``: in memory only.
        engine: keyword arguments of :class:`~neurograph.engine.Engine` when the app makes its own engine.
        jwt_secret: HS256 secret of the JWTs clients present (>= 32 bytes); ``None``: read
            ``jwt_secret_env`` from the environment, else JWTs are refused.
        jwt_secret_env: the environment variable holding the secret.
        jwt_role_claim: the claim carrying the role (``sub`` carries the user id).
        jwt_audience: when set, the ``aud`` claim must equal it.
        api_keys: salted-hash records of the API keys (see :func:`~neurograph.server.auth.new_api_key`).
        allow_anonymous: let clients without credentials in as ``anonymous`` (loopback only, whatever this
            says).
        metrics_interval: seconds between two ``engine.stats`` / ``server.stats`` events on ``metrics``.
        queue_size: events waiting for one client before it counts as slow and is disconnected.
        replay_size: events kept per client for replay after a reconnection.
        reconnect_ttl: seconds a reconnection token (and the session it resumes) stays valid.
        max_message_bytes: largest websocket message accepted (larger: closed with 1009 by the server
            library).
        max_body_bytes: largest REST request body (larger: 413).
        max_batch: most rows of one emit batch (REST or socket).
        rate_limits: token buckets per message type, ``{type: (capacity, refill_per_s)}``, merged over
            :data:`DEFAULT_RATE_LIMITS`.
        ping_interval: seconds between the protocol's keep-alive pings (the server library sends them).
        ping_timeout: seconds to wait for a pong before closing.
        log_level: lowest level forwarded to the ``logs`` channel.
        frame_events: most events coalesced into one ``events`` frame for a client that falls behind.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    path: str | None = None
    engine: Mapping[str, Any] = field(default_factory=dict)
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_secret_env: str = "NEUROGRAPH_JWT_SECRET"
    jwt_role_claim: str = "role"
    jwt_audience: str | None = None
    api_keys: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    allow_anonymous: bool = True
    metrics_interval: float = 5.0
    queue_size: int = 10_000
    replay_size: int = 1000
    reconnect_ttl: float = 300.0
    max_message_bytes: int = 1 << 20
    max_body_bytes: int = 64 << 20
    max_batch: int = 100_000
    rate_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    log_level: str = "INFO"
    frame_events: int = 512

    def __post_init__(self) -> None:
        positive = {
            "metrics_interval": self.metrics_interval,
            "queue_size": self.queue_size,
            "replay_size": self.replay_size,
            "reconnect_ttl": self.reconnect_ttl,
            "max_message_bytes": self.max_message_bytes,
            "max_body_bytes": self.max_body_bytes,
            "max_batch": self.max_batch,
            "frame_events": self.frame_events,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgument(name, value, "must be a positive number")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidArgument("port", self.port, "must be an int in 0..65535")
        for name, spec in self.rate_limits.items():
            ok = isinstance(spec, (tuple, list)) and len(spec) == 2
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in spec)
            if not ok:
                raise InvalidArgument(f"rate_limits.{name}", spec, "must be [capacity, refill_per_s] > 0")
        secret = self.secret
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise InvalidArgument("jwt_secret", "<hidden>", f"must be at least {MIN_SECRET_BYTES} bytes")

    @property
    def secret(self) -> str | None:
        """The JWT secret in force: ``jwt_secret``, else the environment variable, else ``None``."""
        return self.jwt_secret or os.environ.get(self.jwt_secret_env) or None

    @property
    def limits(self) -> dict[str, tuple[float, float]]:
        """The token buckets in force (:data:`DEFAULT_RATE_LIMITS` updated with ``rate_limits``)."""
        merged = dict(DEFAULT_RATE_LIMITS)
        merged.update({k: (float(v[0]), float(v[1])) for k, v in self.rate_limits.items()})
        return merged

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names the loopback interface (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(config: ServerConfig) -> None:
    """Refuse to serve on a non-loopback address without a JWT secret or an API key.

    Raises:
        InvalidArgument: ``host`` is not loopback and neither ``jwt_secret`` (or its environment variable)
            nor ``api_keys`` is configured.
    """
    if not is_loopback(config.host) and config.secret is None and not config.api_keys:
        raise InvalidArgument(
            "host",
            config.host,
            "binding an address other than loopback needs a JWT secret (jwt_secret or "
            f"${config.jwt_secret_env}) or API keys in the config",
        )


def load_config(file: str | os.PathLike[str] | None = None, **overrides: Any) -> ServerConfig:
    """Read a :class:`ServerConfig` from a YAML or JSON file (``None``: defaults), then apply ``overrides``
    whose value is not ``None``.

    Raises:
        InvalidArgument: unknown keys, or a value out of range.
    """
    data: dict[str, Any] = {}
    if file is not None:
        text = Path(file).read_text()
        loaded = json.loads(text) if str(file).endswith(".json") else yaml.safe_load(text)
        if loaded is not None and not isinstance(loaded, Mapping):
            raise InvalidArgument("config", str(file), "must hold a mapping of settings")
        data = dict(loaded or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgument("config", unknown, f"unknown settings; known: {', '.join(sorted(known))}")
    if "api_keys" in data:
        data["api_keys"] = tuple(data["api_keys"] or ())
    if "rate_limits" in data:
        data["rate_limits"] = {k: tuple(v) for k, v in (data["rate_limits"] or {}).items()}
    return ServerConfig(**data)
