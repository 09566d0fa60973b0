"""Log entries: canonical JSON (RFC 8785) objects with a ``type``, one per logged event.

A person is never named in the clear. An entry about a person names them by a subject
commitment made for that entry alone (format version 2, ``"v": 2`` in the entry)::

    SHA-256("clearpost/log-subject/v2\n" ‖ salt ‖ nonce ‖ canonical {"user": id[, "detail": d]})

with the person's secret 32-byte salt and a fresh 32-byte nonce. The opening (nonce and
detail) goes only to that person's devices, so no two entries about one person can be
linked by anyone else, and nothing stable of a person (a device id, a key) is in the
entry: a ``device`` entry commits to the device id and keys in its ``detail``.

Entries written before version 2 keep their form (the log is append-only): their subject is
``SHA-256(salt ‖ user_id)``, the same in every entry about one person, so they link to each
other. That value is still the server's private index of a person's entries.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
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
    "keydir",
)
PARTNER_CHANGES = ("suspended", "resumed", "secret-rotated")
MAX_ENTRY_BYTES = 16 * 1024
ENTRY_VERSION = 2
"""Entries about a person carry ``"v": 2`` and a per-entry commitment from this version on."""
NONCE_BYTES = 32
_SUBJECT_V2 = b"clearpost/log-subject/v2\n"


def commitment(salt: bytes, user_id: str) -> str:
    """The version-1 subject: hex SHA-256 over salt ‖ UTF-8 user id. The same for every
    entry about one person, so it is no longer published; the server indexes by it."""
    if len(salt) != 32:
        raise InvalidInput("a subject salt is 32 bytes")
    return hashlib.sha256(salt + user_id.encode()).hexdigest()


def entry_commitment(
    salt: bytes, user_id: str, nonce: bytes, detail: dict[str, Any] | None = None
) -> str:
    """The version-2 subject of one entry (formula in the module docstring)."""
    if len(salt) != 32:
        raise InvalidInput("a subject salt is 32 bytes")
    if len(nonce) != NONCE_BYTES:
        raise InvalidInput(f"a subject nonce is {NONCE_BYTES} bytes")
    opened: dict[str, Any] = {"user": user_id}
    if detail is not None:
        opened["detail"] = detail
    return hashlib.sha256(_SUBJECT_V2 + salt + nonce + canonical_json(opened)).hexdigest()


@dataclass(frozen=True, slots=True)
class Committed:
    """A fresh subject commitment for one entry about one person."""

    subject: str
    """Public: the entry's ``subject``."""
    key: str
    """Private: the version-1 commitment the server finds a person's entries by."""
    opening: bytes
    """Private, for the person's devices only: canonical ``{"nonce", "detail"?}``."""


def commit(
    salt: bytes, user_id: str, nonce: bytes, detail: dict[str, Any] | None = None
) -> Committed:
    """Commit to ``user_id`` (and ``detail``) for one entry, with a fresh ``nonce``."""
    opening: dict[str, Any] = {"nonce": base64.b64encode(nonce).decode()}
    if detail is not None:
        opening["detail"] = detail
    return Committed(
        entry_commitment(salt, user_id, nonce, detail),
        commitment(salt, user_id),
        canonical_json(opening),
    )


def open_commitment(salt: bytes, user_id: str, opening: Any, subject: Any) -> bool:
    """True when ``opening`` (the JSON object the server sent) opens ``subject`` to
    ``user_id`` under ``salt``; False for any malformed or non-matching opening."""
    if not isinstance(opening, dict) or not isinstance(opening.get("nonce"), str):
        return False
    detail = opening.get("detail")
    if detail is not None and not isinstance(detail, dict):
        return False
    try:
        nonce = base64.b64decode(opening["nonce"], validate=True)
        return bool(entry_commitment(salt, user_id, nonce, detail) == subject)
    except (ValueError, InvalidInput):
        return False


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


def device_detail(device_id: str, curve25519: str, ed25519: str) -> dict[str, Any]:
    """What a ``device`` entry's commitment binds (its opening's ``detail``)."""
    return {"device_id": device_id, "keys": {"curve25519": curve25519, "ed25519": ed25519}}


def device_entry(subject: str, change: str, time_ms: int) -> dict[str, Any]:
    """A device key was published (``added``) or withdrawn (``removed``). The device id and
    keys are only in the commitment (``device_detail``); the keys are served by the device
    list and, later, the key directory."""
    return {
        "type": "device",
        "v": ENTRY_VERSION,
        "subject": subject,
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
        "v": ENTRY_VERSION,
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
        "v": ENTRY_VERSION,
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
        "v": ENTRY_VERSION,
        "partner": partner_id,
        "scope": scope,
        "endpoint": endpoint,
        "subject": subject,
        "data": data,
        "items": items,
        "time": time_ms,
    }


KEYDIR_MARKER = b'"type":"keydir"'
"""In every key-directory epoch entry: entries are canonical JSON (``decode_entry``
refuses anything else), where a key and its string value are written exactly so, and a
quote inside a string is escaped. Bytes without it hold no epoch entry."""


def keydir_entry(
    epoch: int,
    root: bytes,
    through: int,
    time_ms: int,
    log_seconds: int,
    heartbeat_seconds: int,
    vrf_public_key: bytes,
) -> dict[str, Any]:
    """The key directory's root after ``epoch`` (issue 17). ``through``: every log entry
    below that index is counted in its person's ``log:`` label. ``log_seconds``: the server
    counts entries about people at most this often, and at its first epoch after that long
    (``count_time`` in ``core/keydir_labels.py`` is the rule clients and auditors check).
    ``heartbeat_seconds`` and ``vrf_public_key`` (base64): the longest the server goes
    without an epoch and the key its labels are computed under, stated in the log so that
    every device judges by the same ones (``core/keydir_epoch.py``)."""
    return {
        "type": "keydir",
        "epoch": epoch,
        "root": root.hex(),
        "through": through,
        "time": time_ms,
        "log_seconds": log_seconds,
        "heartbeat_seconds": heartbeat_seconds,
        "vrf_public_key": base64.b64encode(vrf_public_key).decode(),
    }
