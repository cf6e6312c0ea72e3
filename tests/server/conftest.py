"""Fixtures of the server tests: a real uvicorn on 127.0.0.1 (a free port) in a thread, JWTs per role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from neurograph.server import ServerConfig, make_token
from tests.server.live import SECRET, Live, live


@pytest.fixture(scope="module")
def srv() -> Iterator[Live]:
    """One server per test module: JWT secret set, generous emit bucket, 0.2 s metrics ticks."""
    config = ServerConfig(jwt_secret=SECRET, metrics_interval=0.2, rate_limits={"emit": (1000, 1000)})
    with live(config=config) as server:
        yield server


def token(role: str, user: str | None = None, ttl: float = 600) -> str:
    """A JWT for ``role`` signed with the test secret."""
    return make_token(SECRET, user or f"{role}-user", role, ttl)
