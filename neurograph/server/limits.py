"""Token buckets per client and message type (DESIGN §9).

A bucket holds up to ``capacity`` tokens and gains ``refill`` per second; each message takes one. A
message that finds its bucket empty is refused with the seconds until a token is back (``retry_after``),
and nothing else happens. Buckets of one client are independent per message type (types without an entry
of their own get a bucket with the ``default`` parameters), so a burst of ``subscribe`` never starves
that client's ``ping``, and clients never share a bucket. The caller bounds the set of types (the socket
handler maps unknown types to one ``default`` bucket).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """One bucket: ``take()`` returns 0.0 when a token was taken, else the seconds to wait for one.

    Args:
        capacity: most tokens held (the largest burst).
        refill: tokens gained per second.
        clock: monotonic seconds (``time.monotonic``).
    """

    __slots__ = ("_clock", "capacity", "refill", "stamp", "tokens")

    def __init__(self, capacity: float, refill: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self.refill, self._clock = float(capacity), float(refill), clock
        self.tokens, self.stamp = float(capacity), clock()

    def take(self) -> float:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.refill

    def __repr__(self) -> str:
        return f"TokenBucket(capacity={self.capacity:g}, refill={self.refill:g}/s, tokens={self.tokens:.2f})"


class RateLimiter:
    """The buckets of one client, made on first use per message type.

    Args:
        limits: ``{message type: (capacity, refill per s)}`` with a ``"default"`` entry: the parameters of
            the bucket of every other type (each type still has its own bucket).
    """

    def __init__(self, limits: Mapping[str, tuple[float, float]]) -> None:
        self.limits = dict(limits)
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, message_type: str) -> float:
        """Take a token for ``message_type``: 0.0 when allowed, else ``retry_after`` in seconds."""
        bucket = self._buckets.get(message_type)
        if bucket is None:
            spec = self.limits.get(message_type, self.limits["default"])
            bucket = self._buckets[message_type] = TokenBucket(*spec)
        return bucket.take()
