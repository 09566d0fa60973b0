"""What a ``keydir`` log entry states about the directory besides its root.

An epoch's entry (``keydir_entry`` in ``core/tlog/entries.py``) names the VRF key its
labels are computed under, the heartbeat it promises and how often at the most it counts
the log entries about people (``log_seconds``, judged by ``count_time`` in
``core/keydir_labels.py``). They are in the signed,
witnessed log, the same for everyone, so a server cannot hand one device a key or a
heartbeat that no one else sees:

- a device checks that the key it verifies with is the one the answer's epoch states
  (a device handed another key would look people up under labels whose versions no owner
  ever checks: a ghost device nobody else sees);
- a device judges an epoch's age by the heartbeat the epoch states, not by the one a
  server answers it (which could be a day for one device and five minutes for the rest),
  and refuses one dated too far either side of its clock (``when``);
- auditors check that every epoch states the same key, no heartbeat above
  ``MAX_HEARTBEAT_SECONDS``, and no time too far ahead of their clock.

Entries from before these fields lack them (``None``; ``log_seconds`` came first); once an
epoch states the key and heartbeat, every later one does (auditors check it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.keydir_labels import MAX_HEARTBEAT_SECONDS

__all__ = ["CLOCK_SLACK_MS", "EpochStated", "EpochStatementInvalid", "stated", "when"]

CLOCK_SLACK_MS = 60_000
"""How far a reader's clock and the server's may disagree when an epoch's time is judged."""


class EpochStatementInvalid(InvalidInput):
    """An epoch entry states a malformed key or a heartbeat no server may state."""

    code = "keydir_wrong_entry"


@dataclass(frozen=True, slots=True)
class EpochStated:
    vrf_public_key: bytes | None
    """The directory's VRF public key (32 bytes), or None in an entry from before the field."""
    heartbeat_seconds: int | None
    """The longest the server goes without an epoch, or None likewise."""
    log_seconds: int | None
    """How often at the most entries about people are counted, or None likewise; its
    ceiling is the count rule's to judge (``check_count_age``)."""


def when(time_ms: int, now_ms: int, heartbeat_ms: int) -> str | None:
    """Whether an epoch dated ``time_ms`` is current at ``now_ms`` (a reader's clock): None
    when it is; ``"stale"`` when it is older than twice the heartbeat and the clock slack (a
    server publishes at least once a heartbeat, so it is showing an old view); ``"ahead"``
    when it is dated that much later than now (such an epoch would look current for that
    much longer: a server could date one ahead and freeze a reader's view on it)."""
    allowed = 2 * heartbeat_ms + CLOCK_SLACK_MS
    if time_ms < now_ms - allowed:
        return "stale"
    if time_ms > now_ms + allowed:
        return "ahead"
    return None


def stated(entry: Mapping[str, Any]) -> EpochStated:
    """What ``entry`` states, checked (``EpochStatementInvalid``)."""
    key, heartbeat = entry.get("vrf_public_key"), entry.get("heartbeat_seconds")
    every = entry.get("log_seconds")
    if every is not None and not _whole(every):
        raise EpochStatementInvalid("an epoch's log_seconds is not a whole number")
    if (key is None) != (heartbeat is None):
        raise EpochStatementInvalid("an epoch states its VRF key and heartbeat, or neither")
    raw: bytes | None = None
    if key is not None:
        try:
            raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise EpochStatementInvalid("an epoch's vrf_public_key is not 32 bytes of base64")
    if heartbeat is not None:
        if not _whole(heartbeat):
            raise EpochStatementInvalid("an epoch's heartbeat_seconds is not a whole number")
        if heartbeat > MAX_HEARTBEAT_SECONDS:
            raise EpochStatementInvalid(
                f"an epoch says the directory may go {heartbeat:,} s without an epoch, but no "
                f"server may wait more than {MAX_HEARTBEAT_SECONDS:,} s"
            )
    return EpochStated(raw, heartbeat, every)


def _whole(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0
