"""Log entries about you as ``GET /v1/me/log-entries`` returns them: read and opened.

An entry from format version 2 on (``"v": 2``) has its own subject commitment; the server
hands your devices its opening (a nonce, and for a ``device`` entry the device id and keys
it binds), and ``open_subject`` recomputes the commitment from your salt and user id. An
older entry's subject is ``SHA-256(salt || user id)``, the same in all of them (see
docs/transparency-log.md, "Subject commitments").
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, replace
from typing import Any

from clearpost.client.errors import LogVerificationFailed
from clearpost.core.errors import InvalidInput
from clearpost.core.tlog.entries import ENTRY_TYPES, decode_entry, open_commitment

__all__ = ["Item", "LogEntry", "decode", "items", "open_subject"]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log entry about you, decoded; ``verified`` once its inclusion proof checked out."""

    index: int
    type: str
    time: int | None
    partner: str | None
    scopes: tuple[str, ...]
    """``grant``/``revocation``: the scopes; ``access``: the one scope used."""
    endpoint: str | None
    body: dict[str, Any]
    verified: bool = False
    """In the tree of the signed checkpoint (inclusion proof checked)."""
    witnessed: bool = False
    """In the tree that the required witnesses cosigned."""
    detail: dict[str, Any] | None = None
    """What the entry's commitment binds besides you (a device entry: ``device_id`` and
    ``keys``), from its opening; for an older entry, the same fields of the entry itself."""

    @property
    def device_id(self) -> str | None:
        found = (self.detail or {}).get("device_id", self.body.get("device_id"))
        return found if isinstance(found, str) else None

    @property
    def what(self) -> str:
        """The entry in a few words: scopes, endpoint, data, or the device change."""
        b = self.body
        if self.type == "access":
            items = b.get("items")
            data = f"{items} {b.get('data')}" if items is not None else str(b.get("data"))
            return f"{' '.join(self.scopes)}: {self.endpoint or '?'} ({data})"
        if self.type in ("grant", "revocation"):
            reason = f" (reason: {b['reason']})" if "reason" in b else ""
            return " ".join(self.scopes) + reason
        if self.type == "device":
            return f"device {self.device_id} {b.get('change')}"
        return self.type

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "type": self.type,
            "time": self.time,
            "partner": self.partner,
            "scopes": list(self.scopes),
            "endpoint": self.endpoint,
            "verified": self.verified,
            "witnessed": self.witnessed,
            "entry": self.body,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Item:
    """One element of the answer's ``entries``: raw, not yet checked."""

    index: int
    body: bytes
    proof: list[bytes] | None
    opening: dict[str, Any] | None


def items(answer: dict[str, Any], user_id: str) -> list[Item]:
    """The answer's entries, refusing a malformed one, a repeated index, or another user's."""
    if answer.get("user_id") not in (None, user_id):
        raise LogVerificationFailed(
            "the server answered with the log entries of another user", code="log_bad_response"
        )
    entries = answer.get("entries")
    if not isinstance(entries, list):
        raise LogVerificationFailed("the answer has no entry list", code="log_bad_response")
    out: list[Item] = []
    for item in entries:
        try:
            index = item["index"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise TypeError("index")
            body = b64(item["entry"])
            proof = item.get("proof")
            hashes = None if proof is None else [b64(h) for h in proof]
            opening = item.get("opening")
            if opening is not None and not isinstance(opening, dict):
                raise TypeError("opening")
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise LogVerificationFailed(
                f"the answer has a malformed entry ({exc})", code="log_bad_response"
            ) from exc
        out.append(Item(index, body, hashes, opening))
    if len({i.index for i in out}) != len(out):
        raise LogVerificationFailed("the answer lists an entry twice", code="log_bad_response")
    return out


def open_subject(entry: LogEntry, item: Item, salt: bytes, user_id: str, old: str) -> LogEntry:
    """The entry with its ``detail``, once its subject opens to you; ``old`` is your
    version-1 subject (``SHA-256(salt || user id)``). Raises ``log_subject_mismatch``."""
    subject = entry.body.get("subject")
    if "v" not in entry.body:  # before version 2: one subject for all your entries
        if subject != old:
            raise _not_yours(entry, "the salt does not open its subject commitment")
        keys = entry.body.get("keys")
        detail = {"device_id": entry.body.get("device_id"), "keys": keys} if keys else None
        return replace(entry, detail=detail)
    if entry.body.get("v") != 2:
        raise LogVerificationFailed(
            f"entry {entry.index} has an unknown format version {entry.body.get('v')!r}",
            code="log_bad_response",
            index=entry.index,
        )
    if item.opening is None:
        raise _not_yours(entry, "it came without the opening of its subject commitment")
    if not open_commitment(salt, user_id, item.opening, subject):
        raise _not_yours(entry, "its opening does not open its subject commitment to you")
    detail = item.opening.get("detail")
    if entry.type == "device" and not _device_detail(detail):
        raise _not_yours(entry, "its opening names no device id and keys")
    return replace(entry, detail=detail)


def _device_detail(detail: Any) -> bool:
    if not isinstance(detail, dict) or not isinstance(detail.get("device_id"), str):
        return False
    keys = detail.get("keys")
    return isinstance(keys, dict) and all(
        isinstance(keys.get(k), str) for k in ("curve25519", "ed25519")
    )


def _not_yours(entry: LogEntry, why: str) -> LogVerificationFailed:
    return LogVerificationFailed(
        f"entry {entry.index} ({entry.type}) is not about you: {why}",
        code="log_subject_mismatch",
        index=entry.index,
    )


def decode(index: int, body: bytes) -> LogEntry:
    try:
        d = decode_entry(body)
    except InvalidInput as exc:
        raise LogVerificationFailed(
            f"entry {index} is not a log entry: {exc.message}",
            code="log_bad_response",
            index=index,
        ) from exc
    kind = d.get("type")
    if kind not in ENTRY_TYPES:
        raise LogVerificationFailed(
            f"entry {index} has an unknown type {str(kind)[:20]!r}",
            code="log_bad_response",
            index=index,
        )
    scopes: tuple[str, ...] = ()
    if isinstance(d.get("scopes"), list):
        scopes = tuple(str(s) for s in d["scopes"])
    elif isinstance(d.get("scope"), str):
        scopes = (d["scope"],)
    time = d.get("time")
    partner = d.get("partner")
    endpoint = d.get("endpoint")
    return LogEntry(
        index,
        str(kind),
        time if isinstance(time, int) else None,
        partner if isinstance(partner, str) else None,
        scopes,
        endpoint if isinstance(endpoint, str) else None,
        d,
    )


def b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a base64 string")
    return binascii.a2b_base64(value, strict_mode=True)
