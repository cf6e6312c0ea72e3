"""REST under ``/api/v1``, health probes and Prometheus metrics.

==========================  ==========================================  ===========================
route                       what                                        who
==========================  ==========================================  ===========================
``POST /api/v1/emit``       one signal (``vector``), ``EmitResult``     admin, developer, bot, anon.
``POST /api/v1/emit/batch`` ``vectors [B, 8]``: ids, novelty, anomaly   admin, developer, bot, anon.
``GET /api/v1/query?q=``    rows of a query (``docs/query.md``)         every role
``GET /api/v1/tokens/{id}`` one token                                   every role
``GET /api/v1/fields``      fields (tokens of level >= 1), as last built every role
``GET /api/v1/cdna``        the CDNA in force                           every role
``PUT /api/v1/cdna``        a new CDNA version from changed fields      admin
``GET /api/v1/status``      engine and server figures                   every role
``/health/live|ready|startup``  probes (no credentials)
``GET /metrics``            Prometheus exposition (no credentials)
==========================  ==========================================  ===========================

Credentials as for the socket (``Authorization: Bearer``, ``X-API-Key``; anonymous only on loopback).
Errors are JSON ``{"error": <type>, "message": ..., "field": ...}``: 401 bad credentials, 403 a role that
may not, 404 an unknown token, 409 a quota, 413 a body over ``max_body_bytes``, 422 malformed input
(the engine's typed errors: :class:`~neurograph.errors.InvalidSignal`, ``InvalidQuery``,
``InvalidCDNA``...), 503 a store error or a server not ready. Emitted signals appear on the ``signals``
channel like any other.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from neurograph.errors import (
    InvalidArgument,
    InvalidCDNA,
    InvalidQuery,
    NeurographError,
    QuotaExceeded,
    StoreError,
    UnknownToken,
)
from neurograph.server.auth import AuthError, Forbidden, Principal, credential_of
from neurograph.server.state import DEFAULT_EVENT_TYPE, Server
from neurograph.server.wire import dumps

__all__ = ["EmitBatchRequest", "EmitRequest", "install_rest"]

_log = logging.getLogger("neurograph.server")
MAX_ROWS = 100_000  # most rows one query answer returns (``limit``)


class JSONBody(Response):
    """A JSON response through orjson (numpy values included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


Kind = str | int


class EmitRequest(BaseModel):
    """One signal."""

    model_config = ConfigDict(extra="forbid")
    event_type: str = Field(DEFAULT_EVENT_TYPE, max_length=128, description="dotted lowercase type")
    vector: list[float] = Field(..., min_length=8, max_length=8, description="8 numbers, one per axis")
    priority: int = Field(128, ge=0, le=255)
    kind: Kind | None = Field(None, description="entity kind of a new token (name or code)")
    label: str | None = Field(None, max_length=1024, description="token label (engines that have labels)")
    payload: dict[str, Any] | None = Field(None, description="token payload (engines that have payloads)")


class EmitBatchRequest(BaseModel):
    """``B`` signals, with the results of emitting them one by one (DESIGN §3)."""

    model_config = ConfigDict(extra="forbid")
    event_type: str | list[str] = Field(DEFAULT_EVENT_TYPE, description="one type or B types")
    vectors: list[list[float]] = Field(..., min_length=1, description="[B, 8] numbers")
    priorities: int | list[int] = Field(128, description="one priority or B priorities, 0..255")
    kinds: Kind | list[Kind] | None = None
    labels: list[str | None] | None = None
    payloads: list[dict[str, Any] | None] | None = None


_STATUS = {
    UnknownToken: 404,
    QuotaExceeded: 409,
    InvalidArgument: 422,
    InvalidQuery: 422,
    InvalidCDNA: 422,
    StoreError: 503,
    AuthError: 401,
    Forbidden: 403,
}


def _status_of(exc: Exception) -> int:
    for cls, status in _STATUS.items():
        if isinstance(exc, cls):
            return status
    return 400


def _error_body(exc: Exception) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if getattr(exc, "field", None) is not None:
        body["field"] = exc.field  # type: ignore[attr-defined]
    if isinstance(exc, InvalidCDNA):
        body["violations"] = exc.violations
    return body


def principal(request: Request) -> Principal:
    """The client behind a request (a FastAPI dependency); raises :class:`AuthError` (401)."""
    server: Server = request.app.state.server
    peer = request.client.host if request.client else None
    return server.auth.authenticate(credential_of(request.headers, request.query_params), peer)


Who = Annotated[Principal, Depends(principal)]


def install_rest(app: FastAPI, server: Server) -> None:
    """Add the REST routes, probes, ``/metrics``, the error handlers and the body limit to ``app``."""

    @app.exception_handler(NeurographError)
    async def on_error(request: Request, exc: NeurographError) -> Response:
        status = _status_of(exc)
        server.metrics.errors.labels(type(exc).__name__).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONBody(_error_body(exc), status_code=status, headers=headers)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > server.config.max_body_bytes:
            body = {"error": "PayloadTooLarge", "message": f"body over {server.config.max_body_bytes} bytes"}
            return JSONBody(body, status_code=413)
        return await call_next(request)

    def ready() -> None:
        if not server.ready or server.engine is None:
            raise StoreError("the server is not ready")

    errors = {401: {"description": "bad credentials"}, 422: {"description": "malformed input"}}

    @app.post("/api/v1/emit", response_class=JSONBody, tags=["signals"], responses=errors)
    async def emit(body: EmitRequest, who: Who) -> Any:
        """Emit one signal; the reply is its ``EmitResult``."""
        if not who.may_emit:
            raise Forbidden(f"role {who.role!r} may not emit")
        ready()
        return await server.emit(body.model_dump(exclude_none=True), "rest")

    @app.post("/api/v1/emit/batch", response_class=JSONBody, tags=["signals"], responses=errors)
    async def emit_batch(body: EmitBatchRequest, who: Who) -> Any:
        """Emit ``B`` signals as one batch: ``count``, ``novel``, ``token_ids``, ``is_novel``,
        ``anomaly_scores``."""
        if not who.may_emit:
            raise Forbidden(f"role {who.role!r} may not emit")
        ready()
        msg = body.model_dump(exclude_none=True)
        if isinstance(msg.get("event_type"), list):
            msg["event_types"] = msg.pop("event_type")
        return await server.emit(msg, "rest")

    @app.get("/api/v1/query", response_class=JSONBody, tags=["read"], responses=errors)
    async def query(
        who: Who,
        q: Annotated[str, Query(max_length=10_000, description="e.g. find all tokens limit 10")],
        limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
    ) -> Any:
        """Rows of a query (``docs/query.md``): ``count``, ``rows`` (at most ``limit``), ``truncated``."""
        ready()
        eng = server.engine

        def run() -> dict[str, Any]:
            frame = eng.query(q)
            return {
                "count": len(frame),
                "rows": frame.head(limit).to_dict(orient="records"),
                "truncated": len(frame) > limit,
            }

        return await eng.call(run)

    @app.get("/api/v1/tokens/{token_id}", response_class=JSONBody, tags=["read"], responses=errors)
    async def token(who: Who, token_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> Any:
        """One token: id, kind, level, mass, hits, position (404 for an unknown id)."""
        ready()
        return await server.engine.call(server.engine.token, token_id)

    @app.get("/api/v1/fields", response_class=JSONBody, tags=["read"], responses=errors)
    async def fields(who: Who, level: Annotated[int | None, Query(ge=1, le=64)] = None) -> Any:
        """The fields as last built (no rebuild): every level >= 1, or one ``level``."""
        ready()
        eng = server.engine

        def run() -> dict[str, Any]:
            frame = eng.hierarchy(rebuild=False).to_pandas()
            frame = frame[frame["level"] >= 1] if level is None else frame[frame["level"] == level]
            return {"count": len(frame), "rows": frame.to_dict(orient="records")}

        return await eng.call(run)

    @app.get("/api/v1/cdna", response_class=JSONBody, tags=["cdna"], responses=errors)
    async def get_cdna(who: Who) -> Any:
        """The CDNA in force, with its ``hash``."""
        ready()
        cdna = server.engine.cdna
        return {**cdna.to_dict(), "hash": cdna.hash}

    @app.put("/api/v1/cdna", response_class=JSONBody, tags=["cdna"], responses=errors)
    async def put_cdna(changes: dict[str, Any], who: Who) -> Any:
        """Admin: a new CDNA version with the given fields changed (422 lists every broken rule)."""
        if not who.is_admin:
            raise Forbidden(f"role {who.role!r} may not change the CDNA")
        ready()
        eng = server.engine
        if "version" in changes or "name" in changes:
            raise InvalidArgument("cdna", sorted(changes), "'version' and 'name' are not changed by hand")

        def update() -> dict[str, Any]:
            try:
                cdna = eng.update_cdna(**changes)
            except (TypeError, ValueError) as exc:
                if isinstance(exc, NeurographError):
                    raise
                raise InvalidArgument("cdna", changes, str(exc)) from exc
            return {**cdna.to_dict(), "hash": cdna.hash}

        return await eng.call(update)

    @app.get("/api/v1/status", response_class=JSONBody, tags=["read"], responses=errors)
    async def status(who: Who) -> Any:
        """Engine figures (``Engine.stats()`` plus ``fields``), server figures and health."""
        ready()
        return {
            "engine": await server.engine_stats(),
            "server": server.server_stats(),
            "health": server.health(),
            "version": app.version,
        }

    @app.get("/health/live", response_class=JSONBody, tags=["health"])
    async def live() -> Any:
        """200 while the event loop answers."""
        return {"status": "live"}

    @app.get("/health/ready", response_class=JSONBody, tags=["health"])
    async def health_ready() -> Any:
        """200 when the engine is open and the server accepts work, else 503."""
        ok = server.ready
        return JSONBody({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    @app.get("/health/startup", response_class=JSONBody, tags=["health"])
    async def startup() -> Any:
        """200 once startup finished (the engine opened its store), else 503."""
        ok = server.started
        return JSONBody({"status": "started" if ok else "starting"}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        """Prometheus exposition of the app's registry (engine and server figures)."""
        if server.engine is not None and server.ready:
            server.metrics.refresh(await server.engine_stats())
        if server.hub is not None:
            server.server_stats()
        return Response(server.metrics.render(), media_type=CONTENT_TYPE_LATEST)
