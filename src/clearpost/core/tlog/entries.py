"""Log entries: canonical JSON (RFC 8785) objects with a ``type``, one per logged event.

A person is never named in the clear. An entry names its subject by a commitment,
``SHA-256(salt ‖ user_id)``, with a per-user secret 32-byte salt that only that user's
devices receive; with the salt a user can find and check the entries about them, and
nobody else can tell whose entries they are.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from clearpost.core.canonical import canonical_json
from clearpost.core.errors import InvalidInput

ENTRY_TYPES = (
    "agreement",
    "scopes",
    "grant",
    "revocation",
    "access",
    "report",
    "device",
    "partner",
)
PARTNER_CHANGES = ("suspended", "resumed", "secret-rotated")
MAX_ENTRY_BYTES = 16 * 1024


def commitment(salt: bytes, user_id: str) -> str:
    """The subject commitment for ``user_id``: hex SHA-256 over salt ‖ UTF-8 user id."""
    if len(salt) != 32:
        raise InvalidInput("a subject salt is 32 bytes")
    return hashlib.sha256(salt + user_id.encode()).hexdigest()


def encode_entry(entry: dict[str, Any]) -> bytes:
    """The exact bytes that are hashed into the log for ``entry``."""
    if entry.get("type") not in ENTRY_TYPES:
        raise InvalidInput(f"log entries have a type among {', '.join(ENTRY_TYPES)}")
    data = canonical_json(entry)
    if len(data) > MAX_ENTRY_BYTES:
        raise InvalidInput(f"a log entry is at most {MAX_ENTRY_BYTES} bytes")
    return data


def decode_entry(data: bytes) -> dict[str, Any]:
    """Parse entry bytes, refusing anything that is not exactly canonical."""
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("a log entry is not JSON") from exc
    if not isinstance(entry, dict) or canonical_json(entry) != data:
        raise InvalidInput("a log entry is not canonical JSON")
    return entry


def device_entry(
    subject: str, device_id: str, curve25519: str, ed25519: str, change: str, time_ms: int
) -> dict[str, Any]:
    """A device key was published (``added``) or withdrawn (``removed``)."""
    return {
        "type": "device",
        "subject": subject,
        "device_id": device_id,
        "keys": {"curve25519": curve25519, "ed25519": ed25519},
        "change": change,
        "time": time_ms,
    }


def agreement_entry(
    partner_id: str, version: int, agreement: dict[str, Any], time_ms: int
) -> dict[str, Any]:
    """A partner agreement version, published before it takes effect."""
    return {
        "type": "agreement",
        "partner": partner_id,
        "version": version,
        "agreement": agreement,
        "time": time_ms,
    }


def partner_entry(partner_id: str, change: str, time_ms: int) -> dict[str, Any]:
    """An operator's action on a partner: ``suspended``, ``resumed`` or ``secret-rotated``."""
    if change not in PARTNER_CHANGES:
        raise InvalidInput(f"a partner change is one of {', '.join(PARTNER_CHANGES)}")
    return {"type": "partner", "partner": partner_id, "change": change, "time": time_ms}


def scopes_entry(catalogue: dict[str, Any], time_ms: int) -> dict[str, Any]:
    """A version of the scope catalogue: what each scope means and which endpoints it opens."""
    return {"type": "scopes", "catalogue": catalogue, "time": time_ms}


def grant_entry(partner_id: str, scopes: list[str], subject: str, time_ms: int) -> dict[str, Any]:
    """A user consented to ``scopes`` for ``partner_id``."""
    return {
        "type": "grant",
        "partner": partner_id,
        "scopes": sorted(scopes),
        "subject": subject,
        "time": time_ms,
    }


def revocation_entry(
    partner_id: str, scopes: list[str], subject: str, time_ms: int
) -> dict[str, Any]:
    """A user withdrew consent; the partner's tokens stopped working when this was logged."""
    return {
        "type": "revocation",
        "partner": partner_id,
        "scopes": sorted(scopes),
        "subject": subject,
        "time": time_ms,
    }


def access_entry(
    partner_id: str, scope: str, endpoint: str, subject: str, data: str, items: int, time_ms: int
) -> dict[str, Any]:
    """A partner used ``scope`` at ``endpoint`` about ``subject``: the kind of data, how many."""
    return {
        "type": "access",
        "partner": partner_id,
        "scope": scope,
        "endpoint": endpoint,
        "subject": subject,
        "data": data,
        "items": items,
        "time": time_ms,
    }
