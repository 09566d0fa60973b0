"""The key directory's labels and values (the server and every client compute the same).

Two labels per account (``core/keydir`` commits to them; this module says what they hold):

- ``devices:<user id>``: canonical JSON (RFC 8785) of the list of the account's devices'
  signed device keys, each object exactly as its device signed and uploaded it, sorted by
  ``device_id``. Any device that can be in a conversation is there (partner and bot devices
  too). An account whose last device is gone has the empty list ``[]``.
- ``log:<user id>``: canonical JSON ``{"chain": <hex>, "count": n}`` over the indexes of the
  log entries about the account, in order: ``chain_0`` is 32 zero bytes and
  ``chain_i = SHA-256("clearpost/keydir/log-chain\\n" || chain_{i-1} || uint64_be(index_i))``.
  Each epoch's log entry says ``through``: the entries below that index are all counted.
  ``count_time`` is how a client checks that the count is recent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from clearpost.core.canonical import canonical_json
from clearpost.core.errors import InvalidInput
from clearpost.core.keydir.errors import KeyDirProofError

DEVICES = "devices"
LOG = "log"
KINDS = (DEVICES, LOG)
_CHAIN = b"clearpost/keydir/log-chain\n"
EMPTY_CHAIN = bytes(32)


def label(kind: str, user_id: str) -> bytes:
    """The label's bytes: ``<kind>:<user id>`` in UTF-8."""
    if kind not in KINDS:
        raise InvalidInput(f"a directory label kind is one of {', '.join(KINDS)}")
    return f"{kind}:{user_id}".encode()


def devices_value(signed_keys: Iterable[dict[str, Any]]) -> bytes:
    """The ``devices:`` value of an account whose devices uploaded ``signed_keys``."""
    return canonical_json(sorted(signed_keys, key=lambda k: str(k.get("device_id", ""))))


def parse_devices_value(value: bytes) -> list[dict[str, Any]]:
    """The signed device keys in a ``devices:`` value (refusing anything not canonical)."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("a devices value is not JSON") from exc
    if not isinstance(parsed, list) or not all(isinstance(d, dict) for d in parsed):
        raise InvalidInput("a devices value is a list of objects")
    if canonical_json(parsed) != value:
        raise InvalidInput("a devices value is not canonical JSON")
    return parsed


def chain_step(chain: bytes, index: int) -> bytes:
    return hashlib.sha256(_CHAIN + chain + index.to_bytes(8, "big")).digest()


def log_chain(indexes: Iterable[int], start: bytes = EMPTY_CHAIN) -> tuple[int, bytes]:
    """(how many, chain) over ``indexes`` in the order given, continuing from ``start``."""
    chain, n = start, 0
    for i in indexes:
        chain, n = chain_step(chain, i), n + 1
    return n, chain


def log_value(count: int, chain: bytes) -> bytes:
    return canonical_json({"chain": chain.hex(), "count": count})


def parse_log_value(value: bytes) -> tuple[int, bytes]:
    """(count, chain) of a ``log:`` value."""
    try:
        parsed = orjson.loads(value)
        count, chain = parsed["count"], bytes.fromhex(parsed["chain"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("a log value is {chain, count}") from exc
    if not isinstance(count, int) or count < 0 or len(chain) != 32:
        raise InvalidInput("a log value is {chain, count}")
    if log_value(count, chain) != value:
        raise InvalidInput("a log value is not canonical JSON")
    return count, chain


class CountLate(InvalidInput):
    """The epochs show a count of the log entries about people older than the server's
    interval allows: a server that stopped counting could leave newer entries out."""

    code = "log_count_late"


MAX_LOG_SECONDS = 3600
"""The longest interval between counts any server may claim (``keydir_log_seconds``): a
count is checked against the interval its epoch states, so without a bound a server could
state a year and stop counting in plain sight."""
MAX_HEARTBEAT_SECONDS = 86_400
"""The longest heartbeat any server may claim (``keydir_heartbeat_seconds``): clients accept
an epoch up to twice it old, so without a bound a server could freeze their view."""

COUNT_SLACK_MS = 60_000
"""How much later than ``log_seconds`` a count may be before it is evidence: the sequencer
counts at its first step after the interval, and an epoch takes a bounded number of
people, so a large backlog takes a few steps."""

EpochSeen = tuple[int, int, int]
"""(epoch, through, time in ms) of a ``keydir`` log entry."""


def count_time(shown: list[EpochSeen], answer: EpochSeen, log_seconds: int) -> int:
    """When the ``through`` of the ``answer``'s epoch was set (ms), checked to be no more
    than ``log_seconds`` and ``COUNT_SLACK_MS`` before that epoch (``CountLate``
    otherwise): an honest server counts at the first epoch after its interval, and a count
    always moves ``through`` (the epoch before is a new entry), so an older count means the
    server stopped counting.

    ``shown``, in epoch order: the first epoch whose ``through`` is the answer's and the one
    right before it, leaving out the answer's own epoch (so the one before, when the
    answer's epoch counted; the first, when that is epoch 0; else both). ``through`` never
    falls (auditors check it), so the epochs between the first and the answer's keep it.
    Anything else is a ``KeyDirProofError``."""
    epoch, through, _ = answer
    before: EpochSeen | None
    if len(shown) == 2:
        before, first = shown
    elif len(shown) == 1 and shown[0][1] < through:  # the answer's epoch counted
        before, first = shown[0], answer
    elif len(shown) == 1:
        before, first = None, shown[0]
    else:
        before, first = None, answer
    fits = (
        len(shown) <= 2
        and first[1] == through
        and (first is answer or first[0] < epoch)
        and (first[0] == 0 if before is None else before[0] == first[0] - 1)
        and (before is None or before[1] < through)
    )
    if not fits:
        raise KeyDirProofError(
            "the answer does not show when its epoch's count was taken: the first epoch "
            "with its `through` and the epoch before it"
        )
    check_count_age(first[2], answer, log_seconds)
    return first[2]


def check_count_age(counted_at: int, answer: EpochSeen, log_seconds: int) -> None:
    """``CountLate`` when the count taken at ``counted_at`` (ms) is more than
    ``log_seconds`` and ``COUNT_SLACK_MS`` older than the ``answer`` epoch that keeps it."""
    epoch, through, time_ms = answer
    if log_seconds > MAX_LOG_SECONDS:
        raise CountLate(
            f"the key directory's epoch {epoch} says it counts the log entries about people "
            f"only every {log_seconds:,} s, but no server may wait more than "
            f"{MAX_LOG_SECONDS:,} s: it could stop counting unseen"
        )
    late = time_ms - counted_at
    if late > log_seconds * 1000 + COUNT_SLACK_MS:
        raise CountLate(
            f"the key directory last counted the log entries about people {late // 1000:,} s"
            f" before its epoch {epoch}, but it counts them every {log_seconds} s: entries "
            f"about people from index {through:,} on may have been left out"
        )
