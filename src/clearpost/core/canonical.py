"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme).

Signatures over JSON objects (device keys, log entries, reports) are computed over these
bytes, so signer and verifier agree byte for byte. We use the ``rfc8785`` package rather
than our own serializer: number formatting is where hand-written JCS code goes wrong.

For the common case — objects of strings, integers, booleans and null with ASCII keys —
orjson with sorted keys already produces exactly the RFC 8785 bytes (same escaping, same
integer form, key order by code unit for ASCII keys), and is much faster; anything else
(a float, a non-ASCII key) goes to ``rfc8785``. A property test holds the two together.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

from clearpost.core.errors import InvalidInput

_MAX_SAFE = 2**53 - 1  # I-JSON: larger integers are not interoperable; rfc8785 refuses them


def canonical_json(value: Any) -> bytes:
    if _plain(value, 0):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"value cannot be canonicalised: {exc}") from exc


def _plain(value: Any, depth: int) -> bool:
    """True when orjson's sorted output is already the RFC 8785 form of ``value``."""
    if depth > 64:
        return False
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE <= value <= _MAX_SAFE)
    if kind is dict:
        return all(
            type(k) is str and k.isascii() and _plain(v, depth + 1) for k, v in value.items()
        )
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    return False


def signable(obj: dict[str, Any]) -> bytes:
    """The bytes a signature over ``obj`` covers: everything but ``signatures`` and ``unsigned``."""
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})


def matrix_canonical_json(value: Any) -> bytes:
    """Matrix's canonical JSON (client-server spec, "Canonical JSON"): keys sorted by code
    point, no insignificant whitespace, UTF-8 without escaping, integers only (no floats),
    within -(2**53)+1 .. 2**53-1. For objects with ASCII keys and no floats this is byte for
    byte RFC 8785 as well, which is the fast path."""
    if _plain(value, 0):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    try:
        _matrix_check(value)
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise InvalidInput(f"value cannot be canonicalised: {exc}") from exc


def _matrix_check(value: Any) -> None:
    """Refuse what Matrix canonical JSON cannot hold: floats and integers beyond 2**53."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float) or (type(item) is int and not -_MAX_SAFE <= item <= _MAX_SAFE):
            raise InvalidInput("Matrix canonical JSON has no floats or integers beyond 2**53")
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def matrix_signable(obj: dict[str, Any]) -> bytes:
    """The bytes a Matrix signature over ``obj`` covers: its canonical JSON without
    ``signatures`` and ``unsigned``."""
    return matrix_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )
