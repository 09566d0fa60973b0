"""Cursors, configuration layers, the write batcher and the rate limiter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearpost.core.clock import FakeClock
from clearpost.core.errors import InvalidInput, RateLimited
from clearpost.server.config import load_settings
from clearpost.server.services.batcher import Batcher
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.server.services.sync import decode_cursor, encode_cursor


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_cursors_round_trip(pos: int) -> None:
    assert decode_cursor(encode_cursor(pos)) == pos


@pytest.mark.parametrize(
    "bad", ["", "cp1_", "cp1_!!!!!!!!!!!", "xx1_AAAAAAAAAAA", "cp1_AAAAAAAAAAAA"]
)
def test_foreign_cursors_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_cursor(bad)
    assert err.value.code == "invalid_cursor"


def test_settings_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\nmax_group_members = 10\n')
    monkeypatch.setenv("CLEARPOST_PORT", "9100")
    s = load_settings(cfg, host=None, max_group_members=None)
    assert (s.port, s.host, s.max_group_members) == (9100, "0.0.0.0", 10)
    assert load_settings(cfg, port=9200).port == 9200
    assert s.database_url().startswith("sqlite+aiosqlite:///")


def test_settings_refuse_unknown_keys_and_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(InvalidInput, match="prot"):
        load_settings(cfg)
    monkeypatch.setenv("CLEARPOST_PORT", "eighty")
    with pytest.raises(InvalidInput, match="port"):
        load_settings()


async def test_batcher_groups_concurrent_items_and_keeps_order() -> None:
    sizes: list[int] = []

    async def write(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(write)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    assert results == [i * 2 for i in range(50)]
    assert sum(sizes) == 50 and len(sizes) < 50  # one transaction for many callers


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    async def write(items: list[int]) -> list[int]:
        raise RuntimeError("disk full")

    batcher: Batcher[int, int] = Batcher(write)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_rate_limiter_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, rate=1.0, burst=2, what="requests")
    limiter.hit("k")
    limiter.hit("k")
    with pytest.raises(RateLimited) as err:
        limiter.hit("k")
    assert 0 < err.value.retry_after <= 1
    limiter.hit("other")  # keys are independent
    clock.advance(1)
    limiter.hit("k")
    RateLimiter(clock, rate=0, burst=1, what="x").hit("k")  # 0 disables
