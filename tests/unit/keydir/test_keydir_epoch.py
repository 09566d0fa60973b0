"""What an epoch's log entry states besides its root (``core/keydir_epoch.py``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from clearpost.core.keydir_epoch import CLOCK_SLACK_MS, EpochStatementInvalid, stated, when
from clearpost.core.tlog.entries import keydir_entry

KEY = bytes(range(32))


def entry(**changes: Any) -> dict[str, Any]:
    e = keydir_entry(4, b"\x01" * 32, 10, 5, 60, 300, KEY)
    e.update(changes)
    return {k: v for k, v in e.items() if v is not None}


def test_an_epoch_states_its_vrf_key_and_heartbeat() -> None:
    said = stated(entry())
    assert (said.vrf_public_key, said.heartbeat_seconds, said.log_seconds) == (KEY, 300, 60)
    assert stated(entry(heartbeat_seconds=86_400)).heartbeat_seconds == 86_400
    assert stated(entry(heartbeat_seconds=0)).heartbeat_seconds == 0
    old = stated(entry(vrf_public_key=None, heartbeat_seconds=None))  # before the fields
    assert (old.vrf_public_key, old.heartbeat_seconds, old.log_seconds) == (None, None, 60)
    oldest = stated(entry(vrf_public_key=None, heartbeat_seconds=None, log_seconds=None))
    assert oldest.log_seconds is None
    # the interval's ceiling is the count rule's to judge (``check_count_age``), not this
    assert stated(entry(log_seconds=86_400)).log_seconds == 86_400


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"vrf_public_key": None}, "or neither"),
        ({"heartbeat_seconds": None}, "or neither"),
        ({"vrf_public_key": base64.b64encode(KEY[:31]).decode()}, "not 32 bytes"),
        ({"vrf_public_key": "not base64!"}, "not 32 bytes"),
        ({"vrf_public_key": 7}, "not 32 bytes"),
        ({"heartbeat_seconds": -1}, "not a whole number"),
        ({"heartbeat_seconds": True}, "not a whole number"),
        ({"heartbeat_seconds": 1.5}, "not a whole number"),
        ({"heartbeat_seconds": 86_401}, "no server may wait more than 86,400 s"),
        ({"log_seconds": -1}, "log_seconds is not a whole number"),
        ({"log_seconds": "60"}, "log_seconds is not a whole number"),
    ],
)
def test_a_malformed_statement_is_refused(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(EpochStatementInvalid, match=words) as refused:
        stated(entry(**changes))
    assert refused.value.code == "keydir_wrong_entry"


def test_an_epoch_is_current_within_twice_its_heartbeat_and_a_minute_either_way() -> None:
    now, beat = 1_800_000_000_000, 300_000
    allowed = 2 * beat + CLOCK_SLACK_MS
    assert when(now, now, beat) is None
    assert when(now - allowed, now, beat) is None and when(now + allowed, now, beat) is None
    assert when(now - allowed - 1, now, beat) == "stale"
    assert when(now + allowed + 1, now, beat) == "ahead"
    assert when(now + 86_400_000, now, 86_400_000) is None  # a day's heartbeat: a day either way
