"""Control payloads between devices, carried only inside Olm (never in the clear).

The server relays these as olm.v1 to-device envelopes and cannot read them. Every
client (Python SDK, browser) must build and check them the same way, so the format
lives here. Pure: no I/O.

Olm plaintext::

    {"v": 1, "type": "room_key" | "key_request" | "withheld",
     "sender": <user>, "sender_device": <device>, "sender_ed25519": <key>,
     "recipient": <user>, "recipient_device": <device>, "recipient_ed25519": <key>,
     "content": {...}}

The sender and recipient fields bind the payload to both devices' identity keys: the
recipient checks that they name itself and the device whose Curve25519 key the Olm
session authenticated, so a relay cannot redirect a payload to another device.

Contents::

    room_key     {"conversation_id", "session_id", "session_key", "exported": bool,
                  "first_index": int, "members": [user ids the session was made for],
                  "origin": {"user_id", "device_id", "curve25519", "ed25519"}}
    key_request  {"conversation_id", "session_id", "origin_device", "message_index", "request_id"}
    withheld     {"conversation_id", "session_id", "code", "reason"}

``exported`` is true for a key forwarded from an inbound session (an
``ExportedSessionKey`` starting at ``first_index``); false for the original
``SessionKey`` of an outbound session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from clearpost.core.errors import InvalidEnvelope

VERSION = 1
ROOM_KEY = "room_key"
KEY_REQUEST = "key_request"
WITHHELD = "withheld"
TYPES = (ROOM_KEY, KEY_REQUEST, WITHHELD)

WITHHELD_NOT_MEMBER = "not_member"
WITHHELD_NOT_MEMBER_THEN = "not_member_then"
WITHHELD_UNVERIFIED = "unverified"


class InvalidPayload(InvalidEnvelope):
    """A decrypted control payload that does not follow the format."""

    code = "invalid_payload"


@dataclass(frozen=True, slots=True)
class DeviceRef:
    user_id: str
    device_id: str
    ed25519: str


@dataclass(frozen=True, slots=True)
class OlmPayload:
    type: str
    sender: DeviceRef
    recipient: DeviceRef
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Origin:
    user_id: str
    device_id: str
    curve25519: str
    ed25519: str


@dataclass(frozen=True, slots=True)
class RoomKey:
    conversation_id: str
    session_id: str
    session_key: str
    exported: bool
    first_index: int
    members: tuple[str, ...]
    origin: Origin


@dataclass(frozen=True, slots=True)
class KeyRequest:
    conversation_id: str
    session_id: str
    origin_device: str
    message_index: int
    request_id: str


@dataclass(frozen=True, slots=True)
class Withheld:
    conversation_id: str
    session_id: str
    code: str
    reason: str


def build(kind: str, content: dict[str, Any], sender: DeviceRef, recipient: DeviceRef) -> bytes:
    if kind not in TYPES:
        raise InvalidPayload(f"unknown control payload type {kind!r}")
    return orjson.dumps(
        {
            "v": VERSION,
            "type": kind,
            "sender": sender.user_id,
            "sender_device": sender.device_id,
            "sender_ed25519": sender.ed25519,
            "recipient": recipient.user_id,
            "recipient_device": recipient.device_id,
            "recipient_ed25519": recipient.ed25519,
            "content": content,
        }
    )


def _s(d: dict[str, Any], name: str, max_len: int = 4096) -> str:
    value = d.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidPayload(f"payload field {name!r} must be a non-empty string")
    return value


def _i(d: dict[str, Any], name: str) -> int:
    value = d.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidPayload(f"payload field {name!r} must be a non-negative integer")
    return value


def parse(data: bytes) -> OlmPayload:
    """Parse an Olm plaintext. The caller still checks sender and recipient (see module doc)."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("the Olm payload is not JSON") from exc
    if not isinstance(d, dict) or d.get("v") != VERSION or d.get("type") not in TYPES:
        raise InvalidPayload("the Olm payload has an unknown version or type")
    content = d.get("content")
    if not isinstance(content, dict):
        raise InvalidPayload("the Olm payload has no content object")
    return OlmPayload(
        type=d["type"],
        sender=DeviceRef(_s(d, "sender"), _s(d, "sender_device"), _s(d, "sender_ed25519")),
        recipient=DeviceRef(
            _s(d, "recipient"), _s(d, "recipient_device"), _s(d, "recipient_ed25519")
        ),
        content=content,
    )


def room_key_content(key: RoomKey) -> dict[str, Any]:
    o = key.origin
    return {
        "conversation_id": key.conversation_id,
        "session_id": key.session_id,
        "session_key": key.session_key,
        "exported": key.exported,
        "first_index": key.first_index,
        "members": list(key.members),
        "origin": {
            "user_id": o.user_id,
            "device_id": o.device_id,
            "curve25519": o.curve25519,
            "ed25519": o.ed25519,
        },
    }


def parse_room_key(c: dict[str, Any]) -> RoomKey:
    origin, members = c.get("origin"), c.get("members")
    if not isinstance(origin, dict) or not isinstance(members, list) or len(members) > 10_000:
        raise InvalidPayload("a room key needs an origin object and a members list")
    if not all(isinstance(m, str) for m in members) or not isinstance(c.get("exported"), bool):
        raise InvalidPayload("room key members must be user ids and 'exported' a boolean")
    return RoomKey(
        _s(c, "conversation_id", 128),
        _s(c, "session_id", 128),
        _s(c, "session_key", 8192),
        bool(c["exported"]),
        _i(c, "first_index"),
        tuple(members),
        Origin(
            _s(origin, "user_id", 64),
            _s(origin, "device_id", 64),
            _s(origin, "curve25519", 64),
            _s(origin, "ed25519", 64),
        ),
    )


def key_request_content(req: KeyRequest) -> dict[str, Any]:
    return {
        "conversation_id": req.conversation_id,
        "session_id": req.session_id,
        "origin_device": req.origin_device,
        "message_index": req.message_index,
        "request_id": req.request_id,
    }


def parse_key_request(c: dict[str, Any]) -> KeyRequest:
    return KeyRequest(
        _s(c, "conversation_id", 128),
        _s(c, "session_id", 128),
        _s(c, "origin_device", 64),
        _i(c, "message_index"),
        _s(c, "request_id", 64),
    )


def withheld_content(w: Withheld) -> dict[str, Any]:
    return {
        "conversation_id": w.conversation_id,
        "session_id": w.session_id,
        "code": w.code,
        "reason": w.reason,
    }


def parse_withheld(c: dict[str, Any]) -> Withheld:
    return Withheld(
        _s(c, "conversation_id", 128),
        _s(c, "session_id", 128),
        _s(c, "code", 64),
        _s(c, "reason", 500),
    )
