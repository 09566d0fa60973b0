"""Token-bucket rate limits keyed by client IP, access token, account or grant."""

from __future__ import annotations

from clearpost.core.clock import Clock
from clearpost.core.errors import RateLimited

_MAX_KEYS = 100_000


class RateLimiter:
    """``rate`` tokens per second, at most ``burst`` saved up. ``rate == 0`` disables it.

    At most ``max_keys`` buckets are kept. When full, the buckets that have refilled go
    (forgetting them changes nothing), and only if none has, the one not hit for longest
    (the map is kept in order of use). Clearing the whole map, as this once did at 100,000
    keys, let anyone who made that many keys reset everyone's limit, their own included
    (issue 15)."""

    def __init__(
        self, clock: Clock, rate: float, burst: int, what: str, max_keys: int = _MAX_KEYS
    ) -> None:
        self.clock, self.rate, self.burst, self.what = clock, rate, max(1, burst), what
        self.max_keys = max(1, max_keys)
        self._buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)

    def check(self, key: str) -> None:
        """Raise ``RateLimited`` if ``key`` has no token left, without spending one."""
        if self.rate <= 0:
            return
        tokens = self._tokens(key, self.clock.monotonic())
        if tokens < 1.0:
            raise RateLimited(
                f"too many {self.what}; try again later", retry_after=(1.0 - tokens) / self.rate
            )

    def hit(self, key: str) -> None:
        """Spend one of ``key``'s tokens, or raise ``RateLimited``."""
        if self.rate <= 0:
            return
        now = self.clock.monotonic()
        tokens = self._tokens(key, now)
        self._buckets.pop(key, None)  # re-inserted below: the map stays in order of use
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(
                f"too many {self.what}; try again later", retry_after=(1.0 - tokens) / self.rate
            )
        if len(self._buckets) >= self.max_keys:
            self._evict(now)
        self._buckets[key] = (tokens - 1.0, now)

    def _evict(self, now: float) -> None:
        full = [k for k in self._buckets if self._tokens(k, now) >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]
