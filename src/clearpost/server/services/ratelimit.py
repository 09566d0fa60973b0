"""Token-bucket rate limits keyed by client IP or access token."""

from __future__ import annotations

from clearpost.core.clock import Clock
from clearpost.core.errors import RateLimited

_MAX_KEYS = 100_000


class RateLimiter:
    """``rate`` tokens per second, at most ``burst`` saved up. ``rate == 0`` disables it."""

    def __init__(self, clock: Clock, rate: float, burst: int, what: str) -> None:
        self.clock, self.rate, self.burst, self.what = clock, rate, max(1, burst), what
        self._buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(
                f"too many {self.what}; try again later", retry_after=(1.0 - tokens) / self.rate
            )
        if len(self._buckets) >= _MAX_KEYS:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)
