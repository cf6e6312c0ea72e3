"""Who a client is and what it may do: API keys, JWTs, anonymous loopback clients, the role matrix.

**Credentials** come as ``Authorization: Bearer <credential>``, an ``X-API-Key`` header, or (browsers
cannot set headers on a websocket) the ``token`` query parameter of ``/ws``:

- an **API key** ``ngk_<id>_<secret>``: ``id`` selects the stored record (``role``, ``user_id``, ``salt``,
  ``hash``, ``iterations``); the key is checked with PBKDF2-HMAC-SHA256 and :func:`secrets.compare_digest`.
  Only the salted hash is stored; :func:`new_api_key` makes a key and its record. A verified key is
  remembered for the life of the process by its SHA-256 (the key is 256 random bits, so this fast hash
  adds no attack surface), so that a REST client does not pay the slow hash on every request.
- a **JWT** signed HS256 with the configured secret (PyJWT, ``algorithms=["HS256"]``): ``sub`` is the user
  id, the role claim (``role`` by default) one of :data:`ROLES` but ``anonymous``; ``exp`` is required.
- nothing: ``anonymous``, only when the server is bound to loopback and the peer is loopback too.

**Roles** (DESIGN §9): :data:`CHANNEL_ROLES` says who may subscribe to what; ``emit`` (socket or REST):
admin, developer, bot, and anonymous (which exists only on loopback); only admin may broadcast or change
the CDNA; every role may read (query, tokens, fields, cdna, status).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from neurograph.errors import InvalidArgument, NeurographError
from neurograph.server.config import ServerConfig, is_loopback

__all__ = [
    "CHANNEL_ROLES",
    "EMIT_ROLES",
    "ROLES",
    "AuthError",
    "Authenticator",
    "Forbidden",
    "Principal",
    "credential_of",
    "make_token",
    "new_api_key",
]

ROLES: tuple[str, ...] = ("admin", "developer", "viewer", "bot", "anonymous")
_EVERYONE = frozenset(ROLES)
CHANNEL_ROLES: dict[str, frozenset[str]] = {
    "metrics": _EVERYONE,
    "status": _EVERYONE,
    "signals": frozenset({"admin", "developer", "bot"}),
    "actions": frozenset({"admin", "developer"}),
    "logs": frozenset({"admin", "developer"}),
    "connections": frozenset({"admin"}),
}
EMIT_ROLES = frozenset({"admin", "developer", "bot", "anonymous"})  # anonymous exists on loopback only
ADMIN_ROLES = frozenset({"admin"})  # broadcast, PUT cdna
KEY_PREFIX = "ngk"
PBKDF2_ITERATIONS = 100_000  # per key record; the record keeps its own count


class AuthError(NeurographError):
    """Credentials missing, malformed, expired or wrong (HTTP 401, websocket close 1008)."""


class Forbidden(NeurographError):
    """An authenticated client asked for something its role may not do (HTTP 403, protocol ``error``)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client: ``user_id``, ``role`` (one of :data:`ROLES`) and how it proved it."""

    user_id: str
    role: str
    method: str  # "api_key", "jwt" or "anonymous"

    def may_subscribe(self, channel: str) -> bool:
        return self.role in CHANNEL_ROLES.get(channel, frozenset())

    @property
    def may_emit(self) -> bool:
        return self.role in EMIT_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES


def _pbkdf2(key: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)


def new_api_key(
    role: str, user_id: str | None = None, iterations: int = PBKDF2_ITERATIONS
) -> tuple[str, dict]:
    """Make an API key and the record to store in the server config (the key itself is not in it).

    Args:
        role: one of :data:`ROLES` but ``anonymous``.
        user_id: the user the key acts as (default: ``key-<id>``).
        iterations: PBKDF2 iterations of the stored hash.

    Returns:
        ``(key, record)``: hand ``key`` to the client once; put ``record`` in ``api_keys``.
    """
    if role not in ROLES or role == "anonymous":
        raise InvalidArgument("role", role, f"must be one of {', '.join(ROLES[:-1])}")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    record = {
        "id": key_id,
        "role": role,
        "user_id": user_id or f"key-{key_id}",
        "salt": salt.hex(),
        "hash": _pbkdf2(key, salt, iterations).hex(),
        "iterations": iterations,
    }
    return key, record


def make_token(
    secret: str, user_id: str, role: str, ttl: float = 3600.0, *, role_claim: str = "role", **claims: Any
) -> str:
    """Sign a JWT (HS256) for ``user_id`` with ``role`` valid for ``ttl`` seconds (tests, admin tools)."""
    now = int(time.time())
    payload = {"sub": user_id, role_claim: role, "iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def credential_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The credential a request carries: ``Authorization: Bearer``, ``X-API-Key`` or ``?token=``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or query.get("token") or None


class Authenticator:
    """Checks credentials against a :class:`ServerConfig` (module docstring).

    Args:
        config: the server settings (secret, API key records, anonymous policy, bound host).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._secret = config.secret
        self._keys: dict[str, Mapping[str, Any]] = {}
        for record in config.api_keys:
            missing = {"id", "role", "salt", "hash"} - set(record)
            if missing or record["role"] not in ROLES or record["role"] == "anonymous":
                raise ValueError(
                    f"invalid API key record {record.get('id')!r}: missing {sorted(missing)} or bad role"
                )
            self._keys[str(record["id"])] = record
        self._verified: dict[str, bytes] = {}  # key id -> sha256 of the key, after one slow check
        self.anonymous_ok = config.allow_anonymous and is_loopback(config.host)

    def authenticate(self, credential: str | None, peer: str | None) -> Principal:
        """The :class:`Principal` behind ``credential`` (``None``: anonymous) from peer address ``peer``.

        Raises:
            AuthError: wrong, expired or malformed credentials, or anonymous where it is not allowed.
        """
        if not credential:
            if self.anonymous_ok and is_loopback(peer):
                return Principal("anonymous", "anonymous", "anonymous")
            raise AuthError("credentials required: an API key or a JWT")
        if credential.startswith(KEY_PREFIX + "_"):
            return self._api_key(credential)
        return self._jwt(credential)

    def _api_key(self, key: str) -> Principal:
        parts = key.split("_", 2)
        record = self._keys.get(parts[1]) if len(parts) == 3 else None
        if record is None:
            raise AuthError("unknown API key")
        fast = hashlib.sha256(key.encode()).digest()
        known = self._verified.get(str(record["id"]))
        if known is None or not secrets.compare_digest(known, fast):
            salt = bytes.fromhex(record["salt"])
            digest = _pbkdf2(key, salt, int(record.get("iterations", PBKDF2_ITERATIONS)))
            if not hmac.compare_digest(digest.hex(), str(record["hash"])):
                raise AuthError("unknown API key")
            self._verified[str(record["id"])] = fast
        return Principal(str(record.get("user_id") or f"key-{record['id']}"), str(record["role"]), "api_key")

    def _jwt(self, token: str) -> Principal:
        if self._secret is None:
            raise AuthError("JWTs are not accepted: the server has no JWT secret")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self.config.jwt_audience,
                options={"require": ["exp", "sub"], "verify_aud": self.config.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        role = claims.get(self.config.jwt_role_claim)
        if role not in ROLES or role == "anonymous":
            raise AuthError(
                f"invalid token: claim {self.config.jwt_role_claim!r} must be one of {ROLES[:-1]}"
            )
        return Principal(str(claims["sub"]), role, "jwt")
