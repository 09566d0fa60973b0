"""Documented limits on what a client may send, checked before anything reaches storage.

Two kinds of input used to reach the database unbounded and come back as 500s:

- **Integers.** PostgreSQL ``BIGINT`` and SQLite ``INTEGER`` are signed 64-bit; a bigger
  Python int in a query makes the driver fail (SQLite ``OverflowError``, asyncpg "out of
  int64 range"). Every integer a request carries to SQL is at most ``MAX_SQL_INT`` (or a
  smaller documented maximum).
- **JSON a device publishes to others** (device keys, one-time and fallback keys): parts of
  it are not covered by any signature the server checks (``unsigned``, ``signatures``), so
  without a bound a device could store and have served arbitrary data, or nest it deeper
  than the JSON encoder goes. ``bounded_json`` checks the depth (without recursion) before
  encoding and the size after.

The limits are listed in ``docs/api.md``.
"""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.core.errors import InvalidInput, PayloadTooLarge

MAX_SQL_INT = 2**63 - 1
"""The largest integer (index, size, sequence number, ...) a request may carry to SQL."""

MAX_JSON_INT = 2**53 - 1
"""The largest integer a JSON body field may carry to SQL: I-JSON (RFC 7493) integers, exact
in every JSON parser and in the OpenAPI schema (which FastAPI writes as a float)."""

MAX_JSON_DEPTH = 8
"""How deeply stored client JSON may nest objects and arrays (``{"a": {}}`` is two deep)."""

MAX_DEVICE_KEYS_BYTES = 4096
"""A device's published ``device_keys`` object, as compact JSON."""

MAX_SIGNED_KEY_BYTES = 1024
"""One signed one-time or fallback key object, as compact JSON."""


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests objects and arrays, counting no further than ``limit + 1``
    (enough to refuse it; the walk stops there, so a hostile value costs little)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def bounded_json(value: Any, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> str:
    """``value`` as compact JSON text, if it nests at most ``max_depth`` levels and encodes to
    at most ``max_bytes``; otherwise InvalidInput ``json_too_deep`` or PayloadTooLarge
    ``json_too_large`` naming ``what``."""
    if json_depth(value, max_depth) > max_depth:
        raise InvalidInput(
            f"{what} nests deeper than {max_depth} levels of objects and arrays",
            code="json_too_deep",
        )
    try:
        encoded = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:  # not JSON data at all
        raise InvalidInput(f"{what} cannot be stored as JSON", code="invalid_input") from exc
    if len(encoded) > max_bytes:
        raise PayloadTooLarge(
            f"{what} is {len(encoded)} bytes as JSON; at most {max_bytes}", code="json_too_large"
        )
    return encoded.decode()
