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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from clearpost.core.canonical import canonical_json
from clearpost.core.errors import InvalidInput

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
