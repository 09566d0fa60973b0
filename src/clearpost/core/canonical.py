"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme).

Signatures over JSON objects (device keys, log entries, reports) are computed over these
bytes, so signer and verifier agree byte for byte. We use the ``rfc8785`` package rather
than our own serializer: number formatting is where hand-written JCS code goes wrong.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from clearpost.core.errors import InvalidInput


def canonical_json(value: Any) -> bytes:
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"value cannot be canonicalised: {exc}") from exc


def signable(obj: dict[str, Any]) -> bytes:
    """The bytes a signature over ``obj`` covers: everything but ``signatures`` and ``unsigned``."""
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})
