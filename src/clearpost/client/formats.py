"""The Matrix end-to-end encryption formats the SDK speaks (client-server spec, "End-to-End
Encryption"), built and checked here and nowhere else. Pure: no I/O.

To-device, the only event type is ``m.room.encrypted`` with Olm content::

    {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": <sender curve25519>,
     "ciphertext": {<recipient curve25519>: {"type": 0 | 1, "body": <Olm message>}}}

Its plaintext (the Olm payload) binds the event to both devices::

    {"type": <event type>, "content": {...}, "sender": "@alice:s", "sender_device": "DEV",
     "keys": {"ed25519": <sender ed25519>}, "recipient": "@bob:s",
     "recipient_keys": {"ed25519": <recipient ed25519>}}

(``sender_device`` is sent by this SDK; matrix-sdk-crypto leaves it out, and then the
device is the one the Olm session authenticated) and its ``content`` is one of::

    m.room_key            {"algorithm": "m.megolm.v1.aes-sha2", "room_id", "session_id",
                           "session_key"}
    m.forwarded_room_key  {"algorithm", "room_id", "sender_key", "session_id", "session_key"
                           (exported), "sender_claimed_ed25519_key",
                           "forwarding_curve25519_key_chain": [...]}
    m.room_key_request    {"action": "request" | "request_cancellation",
                           "requesting_device_id", "request_id",
                           "body"?: {"algorithm", "room_id", "session_id", "sender_key"?}}
    m.room_key.withheld   {"algorithm", "room_id", "session_id", "sender_key", "code",
                           "reason", "from_device"?}

A room message is ``m.room.encrypted`` with Megolm content ``{"algorithm":
"m.megolm.v1.aes-sha2", "ciphertext", "session_id"}`` (the deprecated ``sender_key`` and
``device_id`` are read when present, never sent). Its plaintext is in ``content``.

Every field named above is required unless marked ``?``; anything else is ignored. Keys
and ciphertexts are unpadded standard base64. Parsing raises ``InvalidEvent`` with a
message that names the event type and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from clearpost.client.errors import CryptoError
from clearpost.core.e2ee.device_keys import MEGOLM_ALGORITHM, OLM_ALGORITHM

__all__ = [
    "ENCRYPTED",
    "FORWARDED_ROOM_KEY",
    "MEGOLM_ALGORITHM",
    "OLM_ALGORITHM",
    "ROOM_KEY",
    "ROOM_KEY_REQUEST",
    "WITHHELD",
    "ForwardedRoomKey",
    "InvalidEvent",
    "KeyRequest",
    "OlmPayload",
    "RoomKey",
    "Withheld",
]

ENCRYPTED = "m.room.encrypted"
ROOM_KEY = "m.room_key"
FORWARDED_ROOM_KEY = "m.forwarded_room_key"
ROOM_KEY_REQUEST = "m.room_key_request"
WITHHELD = "m.room_key.withheld"
TO_DEVICE_TYPES = (ROOM_KEY, FORWARDED_ROOM_KEY, ROOM_KEY_REQUEST, WITHHELD)

# m.room_key.withheld codes (the spec's list).
BLACKLISTED = "m.blacklisted"
UNVERIFIED = "m.unverified"
UNAUTHORISED = "m.unauthorised"
UNAVAILABLE = "m.unavailable"
NO_OLM = "m.no_olm"
WITHHELD_CODES = (BLACKLISTED, UNVERIFIED, UNAUTHORISED, UNAVAILABLE, NO_OLM)


class InvalidEvent(CryptoError):
    """An event or its decrypted payload does not follow its Matrix format."""

    code = "invalid_event"


def _s(d: dict[str, Any], name: str, what: str, max_len: int = 8192) -> str:
    value = d.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        state = "is missing" if value is None else "must be a non-empty string"
        raise InvalidEvent(f"{what}: field {name!r} {state}")
    return value


def _opt_s(d: dict[str, Any], name: str, what: str, max_len: int = 8192) -> str | None:
    return None if d.get(name) is None else _s(d, name, what, max_len)


def _algorithm(d: dict[str, Any], what: str, expected: str) -> None:
    if _s(d, "algorithm", what, 100) != expected:
        raise InvalidEvent(f"{what}: algorithm {str(d['algorithm'])[:60]!r} is not {expected}")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidEvent(f"{what} is not a JSON object")
    return value


# -- ids ------------------------------------------------------------------------------------


def server_name_of(user_id: str) -> str:
    """The server part of a Matrix user id (after the first colon)."""
    return user_id.partition(":")[2]


def room_id_for(conversation_id: str, server_name: str) -> str:
    return f"!{conversation_id}:{server_name}"


def conversation_of(room_id: str, server_name: str, what: str) -> str:
    """The conversation a Clearpost room id names; ``InvalidEvent`` for any other room."""
    conv, sep, server = room_id[1:].partition(":")
    if not room_id.startswith("!") or not sep or not conv or server != server_name:
        raise InvalidEvent(f"{what}: {room_id[:100]!r} is not a room of {server_name}")
    return conv


# -- Olm --------------------------------------------------------------------------------------


def olm_content(sender_key: str, recipient_key: str, kind: int, body: str) -> dict[str, Any]:
    return {
        "algorithm": OLM_ALGORITHM,
        "sender_key": sender_key,
        "ciphertext": {recipient_key: {"type": kind, "body": body}},
    }


def olm_ciphertext(content: Any, recipient_key: str) -> tuple[str, int, str]:
    """(sender_key, message type, body) of the Olm message for ``recipient_key``."""
    what = "an m.room.encrypted to-device event"
    c = _object(content, what)
    _algorithm(c, what, OLM_ALGORITHM)
    sender_key = _s(c, "sender_key", what, 64)
    ciphertexts = _object(c.get("ciphertext"), f"{what}'s ciphertext")
    mine = ciphertexts.get(recipient_key)
    if mine is None:
        raise InvalidEvent(f"{what} holds no ciphertext for this device", code="not_for_us")
    mine = _object(mine, f"{what}'s ciphertext")
    kind = mine.get("type")
    if type(kind) is not int or kind not in (0, 1):
        raise InvalidEvent(f"{what}: an Olm message type must be 0 or 1")
    return sender_key, kind, _s(mine, "body", what, 1 << 20)


@dataclass(frozen=True, slots=True)
class OlmPayload:
    """A decrypted Olm payload. ``parse`` checks its shape; the receiver checks that the
    sender fields name the device the Olm session authenticated, and the recipient fields
    name itself."""

    type: str
    content: dict[str, Any]
    sender: str
    sender_device: str
    sender_ed25519: str
    recipient: str
    recipient_ed25519: str

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "content": self.content,
                "sender": self.sender,
                "sender_device": self.sender_device,
                "keys": {"ed25519": self.sender_ed25519},
                "recipient": self.recipient,
                "recipient_keys": {"ed25519": self.recipient_ed25519},
            }
        )

    @classmethod
    def parse(cls, data: bytes, sender_device: str | None = None) -> OlmPayload:
        """``sender_device``: the device the Olm session authenticated (the server names it,
        its Curve25519 key is the session's). Matrix's payload has no ``sender_device``
        field and matrix-sdk-crypto leaves it out, so that device stands in when the
        payload names none; without either, the payload is refused."""
        what = "an Olm payload"
        try:
            d = _object(orjson.loads(data), what)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"{what} is not JSON") from exc
        keys = _object(d.get("keys"), f"{what}'s keys")
        recipient_keys = _object(d.get("recipient_keys"), f"{what}'s recipient_keys")
        device = _opt_s(d, "sender_device", what, 255) or sender_device
        if device is None:
            raise InvalidEvent(f"{what}: field 'sender_device' is missing")
        return cls(
            _s(d, "type", what, 255),
            _object(d.get("content"), f"{what}'s content"),
            _s(d, "sender", what, 255),
            device,
            _s(keys, "ed25519", f"{what}'s keys", 64),
            _s(d, "recipient", what, 255),
            _s(recipient_keys, "ed25519", f"{what}'s recipient_keys", 64),
        )


# -- contents carried inside Olm ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomKey:
    """``m.room_key``: a Megolm session key, from the device that created the session."""

    room_id: str
    session_id: str
    session_key: str

    def content(self) -> dict[str, Any]:
        return {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": self.room_id,
            "session_id": self.session_id,
            "session_key": self.session_key,
        }

    @classmethod
    def parse(cls, c: dict[str, Any]) -> RoomKey:
        what = "an m.room_key"
        _algorithm(c, what, MEGOLM_ALGORITHM)
        return cls(
            _s(c, "room_id", what, 255), _s(c, "session_id", what, 128), _s(c, "session_key", what)
        )


@dataclass(frozen=True, slots=True)
class ForwardedRoomKey:
    """``m.forwarded_room_key``: a session exported by a device that holds it. ``sender_key``
    and ``sender_claimed_ed25519_key`` name the session's origin device."""

    room_id: str
    session_id: str
    session_key: str
    sender_key: str
    sender_claimed_ed25519_key: str
    forwarding_chain: tuple[str, ...] = ()

    def content(self) -> dict[str, Any]:
        return {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": self.room_id,
            "sender_key": self.sender_key,
            "session_id": self.session_id,
            "session_key": self.session_key,
            "sender_claimed_ed25519_key": self.sender_claimed_ed25519_key,
            "forwarding_curve25519_key_chain": list(self.forwarding_chain),
        }

    @classmethod
    def parse(cls, c: dict[str, Any]) -> ForwardedRoomKey:
        what = "an m.forwarded_room_key"
        _algorithm(c, what, MEGOLM_ALGORITHM)
        chain = c.get("forwarding_curve25519_key_chain")
        if not isinstance(chain, list) or not all(isinstance(k, str) for k in chain):
            raise InvalidEvent(f"{what}: field 'forwarding_curve25519_key_chain' must be a list")
        return cls(
            _s(c, "room_id", what, 255),
            _s(c, "session_id", what, 128),
            _s(c, "session_key", what),
            _s(c, "sender_key", what, 64),
            _s(c, "sender_claimed_ed25519_key", what, 64),
            tuple(chain[:100]),
        )


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """``m.room_key_request``; ``room_id`` and ``session_id`` are None for a cancellation."""

    action: str
    requesting_device_id: str
    request_id: str
    room_id: str | None = None
    session_id: str | None = None
    sender_key: str | None = None

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "requesting_device_id": self.requesting_device_id,
            "request_id": self.request_id,
        }
        if self.action == "request":
            body: dict[str, Any] = {
                "algorithm": MEGOLM_ALGORITHM,
                "room_id": self.room_id,
                "session_id": self.session_id,
            }
            if self.sender_key is not None:
                body["sender_key"] = self.sender_key
            out["body"] = body
        return out

    @classmethod
    def parse(cls, c: dict[str, Any]) -> KeyRequest:
        what = "an m.room_key_request"
        action = _s(c, "action", what, 64)
        if action not in ("request", "request_cancellation"):
            raise InvalidEvent(f"{what}: unknown action {action[:40]!r}")
        device, request_id = _s(c, "requesting_device_id", what, 255), _s(c, "request_id", what)
        if action != "request":
            return cls(action, device, request_id)
        body = _object(c.get("body"), f"{what}'s body")
        _algorithm(body, what, MEGOLM_ALGORITHM)
        return cls(
            action,
            device,
            request_id,
            _s(body, "room_id", what, 255),
            _s(body, "session_id", what, 128),
            _opt_s(body, "sender_key", what, 64),
        )


@dataclass(frozen=True, slots=True)
class Withheld:
    """``m.room_key.withheld``: a device will not share a session key, and says why."""

    room_id: str
    session_id: str
    sender_key: str
    code: str
    reason: str
    from_device: str | None = None

    def content(self) -> dict[str, Any]:
        out = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": self.room_id,
            "session_id": self.session_id,
            "sender_key": self.sender_key,
            "code": self.code,
            "reason": self.reason,
        }
        if self.from_device is not None:
            out["from_device"] = self.from_device
        return out

    @classmethod
    def parse(cls, c: dict[str, Any]) -> Withheld:
        what = "an m.room_key.withheld"
        _algorithm(c, what, MEGOLM_ALGORITHM)
        code = _s(c, "code", what, 64)
        if code not in WITHHELD_CODES:
            raise InvalidEvent(f"{what}: unknown code {code[:40]!r}")
        return cls(
            _s(c, "room_id", what, 255),
            _s(c, "session_id", what, 128),
            _s(c, "sender_key", what, 64),
            code,
            _s(c, "reason", what, 500),
            _opt_s(c, "from_device", what, 255),
        )


# -- Megolm -----------------------------------------------------------------------------------


def megolm_content(ciphertext: str, session_id: str) -> dict[str, Any]:
    """A room message's content, as matrix-sdk-crypto sends it (no deprecated fields)."""
    return {"algorithm": MEGOLM_ALGORITHM, "ciphertext": ciphertext, "session_id": session_id}


@dataclass(frozen=True, slots=True)
class MegolmContent:
    ciphertext: str
    session_id: str
    sender_key: str | None
    device_id: str | None

    @classmethod
    def parse(cls, content: Any) -> MegolmContent:
        what = "an m.room.encrypted room event"
        c = _object(content, what)
        _algorithm(c, what, MEGOLM_ALGORITHM)
        return cls(
            _s(c, "ciphertext", what, 1 << 20),
            _s(c, "session_id", what, 128),
            _opt_s(c, "sender_key", what, 64),
            _opt_s(c, "device_id", what, 255),
        )
