"""The rate limiter keeps a limited key limited when its map fills (issue 15: the whole map
was cleared at 100,000 keys, resetting every limit, the abuser's too)."""

from __future__ import annotations

import pytest

from clearpost.core.clock import FakeClock
from clearpost.core.errors import RateLimited
from clearpost.server.services.ratelimit import RateLimiter


def test_a_full_map_forgets_refilled_buckets_not_limited_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, rate=1.0, burst=2, what="tries", max_keys=3)
    limiter.hit("abuser")
    limiter.hit("abuser")
    with pytest.raises(RateLimited):
        limiter.hit("abuser")
    limiter.hit("b")
    clock.advance(1.5)  # b refills to 2; the abuser's bucket holds 1.5 tokens
    limiter.hit("abuser")  # spends it: 0.5 left
    limiter.hit("c")
    clock.advance(0.1)
    for i in range(10):  # more keys than the map holds
        limiter.hit(f"new{i}")
        with pytest.raises(RateLimited):
            limiter.hit("abuser")
    with pytest.raises(RateLimited):
        limiter.check("abuser")


def test_check_does_not_spend() -> None:
    limiter = RateLimiter(FakeClock(), rate=1.0, burst=1, what="tries")
    for _ in range(3):
        limiter.check("k")
    limiter.hit("k")
    with pytest.raises(RateLimited):
        limiter.check("k")
