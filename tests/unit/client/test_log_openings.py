"""Per-entry subject commitments (entry format version 2) as Alice's client sees them: every
entry opens only with its own opening, entries written in the old form still verify, and
the list of her entries is paged with a total instead of cut at 1,000."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from clearpost.client import LogVerificationFailed
from clearpost.core.canonical import canonical_json
from clearpost.core.tlog.entries import access_entry, commitment, encode_entry
from clearpost.storage.sql.tlog import PendingEntry
from tests.unit.client.partners import Partnered, partnered
from tests.unit.client.test_log_verification import ME, auth, rewrite, settled


def _items(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list(answer["entries"])


def _swap_openings(answer: dict[str, Any]) -> None:
    a, b = _items(answer)[:2]
    a["opening"], b["opening"] = b["opening"], a["opening"]


def _no_opening(answer: dict[str, Any]) -> None:
    _items(answer)[-1]["opening"] = None


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_swap_openings, "does not open its subject commitment"),
        (_no_opening, "without the opening"),
    ],
    ids=["swapped", "missing"],
)
async def test_an_entry_opens_only_with_its_own_opening(
    tmp_path: Path, tamper: Any, words: str
) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        await w.alice.verify_log()
        w.tamper.rewrites[ME] = rewrite(tamper)
        with pytest.raises(LogVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_subject_mismatch"
        assert words in failed.value.message


async def _append_old_form(w: Partnered) -> tuple[int, int]:
    """Two entries about Alice in the form written before version 2 (one subject for all,
    device id and keys in the clear), as a log that predates the change holds them."""
    log = w.services.log
    salt = await log.salt(w.alice.user_id)
    old = commitment(salt, w.alice.user_id)
    now = 1_700_000_000_000
    device = {
        "type": "device",
        "subject": old,
        "device_id": "OLDDEVICE",
        "keys": {"curve25519": "c" * 43, "ed25519": "e" * 43},
        "change": "added",
        "time": now,
    }
    access = access_entry("streamco", "profile:basic", "GET /v1/partner/me", old, "profile", 1, now)
    del access["v"]
    first, second = await log.store.append(
        [PendingEntry(encode_entry(device), old), PendingEntry(encode_entry(access), old)], now
    )
    return first, second


async def test_entries_in_the_old_form_still_verify(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        old = await _append_old_form(w)
        await w.integrate()
        log = await w.alice.verify_log()
        assert all(e.verified for e in log.entries)
        by_index = {e.index: e for e in log.entries}
        assert by_index[old[0]].what == "device OLDDEVICE added"
        assert "v" not in by_index[old[1]].body
        assert any(e.body.get("v") == 2 for e in log.entries)

        def foreign(answer: dict[str, Any]) -> None:  # an old-form entry of someone else
            for item in _items(answer):
                if item["index"] == old[1]:
                    entry = orjson.loads(base64.b64decode(item["entry"]))
                    entry["subject"] = "ab" * 32
                    item["entry"] = base64.b64encode(canonical_json(entry)).decode()

        w.tamper.rewrites[ME] = rewrite(foreign)
        with pytest.raises(LogVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_subject_mismatch"


@pytest.mark.slow
async def test_more_than_a_page_of_entries_is_all_shown_with_a_total(tmp_path: Path) -> None:
    """Before: the answer stopped at the oldest 1,000 entries, silently."""
    async with partnered(tmp_path) as w:
        await settled(w)
        log = w.services.log
        entry = access_entry("streamco", "profile:basic", "GET /v1/partner/me", "", "profile", 1, 0)

        async def one() -> int:
            about = await log.commit(w.alice.user_id)
            return await log.append({**entry, "subject": about.subject}, about)

        added = await asyncio.gather(*(one() for _ in range(1005)))
        await w.integrate()
        first = (await w.http.get(ME, headers=auth(w))).json()
        assert first["total"] >= 1005 + 3 and len(first["entries"]) == 1000
        assert first["next_start"] == first["entries"][-1]["index"] + 1
        size = first["size"]
        page = await w.http.get(
            ME, params={"start": first["next_start"], "size": size}, headers=auth(w)
        )
        rest = page.json()
        assert rest["next_start"] is None and rest["size"] == size
        assert len(first["entries"]) + len(rest["entries"]) == first["total"]
        small = (await w.http.get(ME, params={"limit": 2}, headers=auth(w))).json()
        assert len(small["entries"]) == 2 and small["total"] == first["total"]
        bad = await w.http.get(ME, params={"size": size + 99}, headers=auth(w))
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_tree_size"
        for params in ({"limit": 0}, {"limit": 1001}, {"start": -1}):
            r = await w.http.get(ME, params=params, headers=auth(w))
            assert r.status_code == 400, (params, r.text)

        verified = await w.alice.verify_log()
        assert verified.total == first["total"] == len(verified.entries)
        assert set(added) <= {e.index for e in verified.entries}
        assert all(e.verified for e in verified.entries)
