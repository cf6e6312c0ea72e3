"""Token buckets: the arithmetic, and a burst past a bucket on a real server gets ``error`` with
``retry_after`` while another client's pings (and the same client's own ping bucket) keep being answered."""

from __future__ import annotations

import asyncio

import pytest

from neurograph.server.config import DEFAULT_RATE_LIMITS
from neurograph.server.limits import RateLimiter, TokenBucket
from tests.server.live import Live
from tests.server.wsutil import open_ws


def test_bucket_arithmetic() -> None:
    now = [0.0]
    bucket = TokenBucket(3, 2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token comes back in 1/2 s
    now[0] = 0.5
    assert bucket.take() == 0.0
    now[0] = 100.0  # refills up to the capacity, no more
    assert [bucket.take() for _ in range(4)][-1] > 0


def test_design_limits_and_per_type_buckets() -> None:
    assert DEFAULT_RATE_LIMITS == {
        "ping": (120, 2),
        "subscribe": (30, 1),
        "unsubscribe": (30, 1),
        "default": (60, 10),
    }
    limiter = RateLimiter(DEFAULT_RATE_LIMITS)
    assert all(limiter.check("subscribe") == 0 for _ in range(30))
    assert limiter.check("subscribe") > 0
    assert limiter.check("ping") == 0 and limiter.check("unsubscribe") == 0  # separate buckets
    assert all(limiter.check("emit") == 0 for _ in range(60))  # a bucket of its own, "default" sized
    assert limiter.check("emit") == pytest.approx(0.1, abs=0.01)
    assert limiter.check("get_subscriptions") == 0


async def test_burst_is_refused_while_others_are_served(srv: Live) -> None:
    burst, _ = await open_ws(srv.ws)
    calm, _ = await open_ws(srv.ws)
    async with burst, calm:
        n = 45  # past the subscribe bucket's capacity of 30
        for i in range(n):
            await burst.send({"type": "subscribe", "id": i, "channels": ["metrics"]})
        await burst.send({"type": "ping", "id": "p"})  # its own ping bucket is full

        async def pings() -> list[dict]:
            out = []
            for i in range(20):
                await calm.send({"type": "ping", "id": i})
                out.append(await calm.reply("pong"))
            return out

        async def replies() -> list[dict]:
            out = []
            while len(out) < n + 1:
                msg = await burst.recv()
                if msg["type"] in ("subscribed", "error", "pong"):
                    out.append(msg)
            return out

        pongs, answers = await asyncio.gather(pings(), replies())
        assert [p["id"] for p in pongs] == list(range(20))
        errors = [m for m in answers if m["type"] == "error"]
        assert len([m for m in answers if m["type"] == "subscribed"]) >= 30
        assert len(errors) >= n - 35  # 30 in the bucket, plus what refilled (1/s) during the burst
        assert all(0 < e["retry_after"] <= 1.0 and "rate limit" in e["message"] for e in errors)
        assert any(m["type"] == "pong" and m["id"] == "p" for m in answers)
