"""Encrypted event contents: the only message and to-device bodies the server will accept.

The server cannot decrypt anything, but it can tell ciphertext from anything else: every
ciphertext must parse as a vodozemac Megolm or Olm message. Plain text in any shape,
other algorithms (Clearpost's old ``olm.v1`` / ``megolm.v1`` included) and junk base64
are refused here, before anything is stored. There is no switch to turn this off.

Wire formats (Matrix's ``m.room.encrypted`` contents; "b64" is unpadded standard base64)::

    m.megolm.v1.aes-sha2 (conversation message)
    {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": <Megolm message b64>,
     "session_id": <str>, "sender_key"?: <curve25519 b64>, "device_id"?: <sender device>}

    m.olm.v1.curve25519-aes-sha2 (to-device, one per target device)
    {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": <curve25519 b64>,
     "ciphertext": {<recipient curve25519 b64>: {"type": 0 | 1, "body": <Olm message b64>}},
     "org.matrix.msgid"?: <str>}

``sender_key`` and ``device_id`` of a Megolm content are deprecated in the Matrix spec and
matrix-sdk-crypto omits them; when present they must be the sending device's.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import vodozemac

from clearpost.core.errors import InvalidEnvelope, NotEncrypted

MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
ENCRYPTED_EVENT = "m.room.encrypted"
OLD_NAMES = {"megolm.v1": MEGOLM_ALGORITHM, "olm.v1": OLM_ALGORITHM}
MAX_SESSION_ID = 128
MAX_OLM_RECIPIENTS = 16

_MEGOLM_FIELDS = {"algorithm", "sender_key", "session_id", "device_id", "ciphertext"}
_OLM_FIELDS = {"algorithm", "sender_key", "ciphertext", "org.matrix.msgid"}
_B64 = re.compile(r"\A[A-Za-z0-9+/]+\Z")


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "algorithm" not in body:
        raise NotEncrypted(
            "the body is not encrypted event content; Clearpost accepts ciphertext only",
        )
    return body


def _require_algorithm(env: dict[str, Any], expected: str) -> None:
    algorithm = env["algorithm"]
    if algorithm == expected:
        return
    if isinstance(algorithm, str) and algorithm in OLD_NAMES:
        raise NotEncrypted(
            f"{algorithm!r} is Clearpost's old algorithm name; the content must be "
            f"{OLD_NAMES[algorithm]} (Matrix's format)"
        )
    raise NotEncrypted(f"unsupported algorithm {str(algorithm)[:40]!r}; expected {expected}")


def _require_str(body: dict[str, Any], field: str, max_len: int = 4096) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidEnvelope(f"content field {field!r} must be a non-empty string")
    if len(value) > max_len:
        raise InvalidEnvelope(f"content field {field!r} is longer than {max_len} characters")
    return value


def _curve_key(body: dict[str, Any], field: str) -> str:
    value = _require_str(body, field, 64)
    try:
        if not _B64.match(value):
            raise ValueError
        vodozemac.Curve25519PublicKey.from_base64(value)
    except (vodozemac.KeyException, ValueError) as exc:
        raise InvalidEnvelope(
            f"content field {field!r} is not a Curve25519 key (unpadded base64)"
        ) from exc
    return value


def _check_sender_key(env: dict[str, Any], sender_key: str | None) -> None:
    if _curve_key(env, "sender_key") != sender_key and sender_key is not None:
        raise InvalidEnvelope("sender_key is not the sending device's published key")


def _b64decode(value: str) -> bytes:
    if not _B64.match(value):
        raise binascii.Error("not unpadded standard base64")
    padded = value + "=" * (-len(value) % 4)
    return base64.b64decode(padded, validate=True)


def validate_megolm_content(
    body: Any, *, sender_device: str, sender_key: str | None = None
) -> dict[str, Any]:
    """Check that ``body`` is m.megolm.v1.aes-sha2 content from ``sender_device`` (whose
    published Curve25519 key is ``sender_key``, when given); return it unchanged.

    Raises NotEncrypted for anything that is not encrypted content (or names another
    algorithm), InvalidEnvelope for content whose fields or ciphertext are wrong.
    """
    env = _require_object(body)
    _require_algorithm(env, MEGOLM_ALGORITHM)
    extra = set(env) - _MEGOLM_FIELDS
    if extra:
        raise InvalidEnvelope(f"unexpected content fields: {', '.join(sorted(extra))[:200]}")
    if "sender_key" in env:
        _check_sender_key(env, sender_key)
    _require_str(env, "session_id", MAX_SESSION_ID)
    if "device_id" in env and _require_str(env, "device_id", 64) != sender_device:
        raise InvalidEnvelope("device_id is not the sending device")
    ciphertext = _require_str(env, "ciphertext", 1 << 20)
    try:
        if not _B64.match(ciphertext):
            raise ValueError
        vodozemac.MegolmMessage.from_base64(ciphertext)
    except (vodozemac.DecodeException, ValueError) as exc:
        raise InvalidEnvelope("ciphertext is not a Megolm message (unpadded base64)") from exc
    return env


def validate_olm_content(body: Any, *, sender_key: str | None = None) -> dict[str, Any]:
    """Check that ``body`` is m.olm.v1.curve25519-aes-sha2 content (from the device whose
    published Curve25519 key is ``sender_key``, when given); return it unchanged."""
    env = _require_object(body)
    _require_algorithm(env, OLM_ALGORITHM)
    extra = set(env) - _OLM_FIELDS
    if extra:
        raise InvalidEnvelope(f"unexpected content fields: {', '.join(sorted(extra))[:200]}")
    _check_sender_key(env, sender_key)
    if "org.matrix.msgid" in env:
        _require_str(env, "org.matrix.msgid", 128)
    ciphertexts = env.get("ciphertext")
    if not isinstance(ciphertexts, dict) or not ciphertexts:
        raise InvalidEnvelope("content field 'ciphertext' must map recipient keys to messages")
    if len(ciphertexts) > MAX_OLM_RECIPIENTS:
        raise InvalidEnvelope(f"at most {MAX_OLM_RECIPIENTS} recipient keys per content")
    for recipient, message in ciphertexts.items():
        _curve_key({"recipient": recipient}, "recipient")
        if not isinstance(message, dict) or set(message) != {"type", "body"}:
            raise InvalidEnvelope("each Olm ciphertext must be {'type': 0|1, 'body': <base64>}")
        kind, text = message["type"], message["body"]
        if type(kind) is not int or kind not in (0, 1) or not isinstance(text, str):
            raise InvalidEnvelope("Olm message type must be 0 or 1 and its body a string")
        try:
            vodozemac.AnyOlmMessage.from_parts(kind, _b64decode(text))
        except (binascii.Error, vodozemac.DecodeException, ValueError) as exc:
            raise InvalidEnvelope("ciphertext is not an Olm message (unpadded base64)") from exc
    return env
