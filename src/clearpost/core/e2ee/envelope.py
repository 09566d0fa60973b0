"""Encrypted envelopes: the only message and to-device bodies the server will accept.

The server cannot decrypt anything, but it can tell ciphertext from anything else: every
ciphertext must parse as a vodozemac Megolm or Olm message. Plain text, unknown algorithms
and junk base64 are refused here, before anything is stored. There is no switch to turn
this off.

Wire formats::

    megolm.v1 (conversation message)
    {"algorithm": "megolm.v1", "sender_key": <curve25519 b64>, "session_id": <str>,
     "device_id": <sender device>, "ciphertext": <Megolm message b64>}

    olm.v1 (to-device payload, one per target device)
    {"algorithm": "olm.v1", "sender_key": <curve25519 b64>,
     "ciphertext": {<recipient curve25519 b64>: {"type": 0 | 1, "body": <Olm message b64>}}}
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import vodozemac

from clearpost.core.errors import InvalidEnvelope, NotEncrypted

MEGOLM_V1 = "megolm.v1"
OLM_V1 = "olm.v1"
MAX_SESSION_ID = 128
MAX_OLM_RECIPIENTS = 16

_MEGOLM_FIELDS = {"algorithm", "sender_key", "session_id", "device_id", "ciphertext"}
_OLM_FIELDS = {"algorithm", "sender_key", "ciphertext"}


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "algorithm" not in body:
        raise NotEncrypted(
            "the body is not an encrypted envelope; Clearpost accepts ciphertext only",
        )
    return body


def _require_str(body: dict[str, Any], field: str, max_len: int = 4096) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidEnvelope(f"envelope field {field!r} must be a non-empty string")
    if len(value) > max_len:
        raise InvalidEnvelope(f"envelope field {field!r} is longer than {max_len} characters")
    return value


def _curve_key(body: dict[str, Any], field: str) -> str:
    value = _require_str(body, field, 64)
    try:
        vodozemac.Curve25519PublicKey.from_base64(value)
    except vodozemac.KeyException as exc:
        raise InvalidEnvelope(f"envelope field {field!r} is not a Curve25519 key") from exc
    return value


def _check_sender_key(env: dict[str, Any], sender_key: str | None) -> None:
    if _curve_key(env, "sender_key") != sender_key and sender_key is not None:
        raise InvalidEnvelope("envelope sender_key is not the sending device's published key")


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.b64decode(padded, validate=True)


def validate_megolm_envelope(
    body: Any, *, sender_device: str, sender_key: str | None = None
) -> dict[str, Any]:
    """Check that ``body`` is a megolm.v1 envelope from ``sender_device`` (whose published
    Curve25519 key is ``sender_key``, when given); return it unchanged.

    Raises NotEncrypted for anything that is not an envelope, InvalidEnvelope for an
    envelope whose fields or ciphertext are wrong.
    """
    env = _require_object(body)
    if env["algorithm"] != MEGOLM_V1:
        raise NotEncrypted(
            f"unsupported algorithm {str(env['algorithm'])[:40]!r}; expected megolm.v1"
        )
    extra = set(env) - _MEGOLM_FIELDS
    if extra:
        raise InvalidEnvelope(f"unexpected envelope fields: {', '.join(sorted(extra))[:200]}")
    _check_sender_key(env, sender_key)
    _require_str(env, "session_id", MAX_SESSION_ID)
    if _require_str(env, "device_id", 64) != sender_device:
        raise InvalidEnvelope("envelope device_id is not the sending device")
    ciphertext = _require_str(env, "ciphertext", 1 << 20)
    try:
        vodozemac.MegolmMessage.from_base64(ciphertext)
    except (vodozemac.DecodeException, ValueError) as exc:
        raise InvalidEnvelope("ciphertext is not a Megolm message") from exc
    return env


def validate_olm_envelope(body: Any, *, sender_key: str | None = None) -> dict[str, Any]:
    """Check that ``body`` is an olm.v1 to-device envelope (from the device whose published
    Curve25519 key is ``sender_key``, when given); return it unchanged."""
    env = _require_object(body)
    if env["algorithm"] != OLM_V1:
        raise NotEncrypted(f"unsupported algorithm {str(env['algorithm'])[:40]!r}; expected olm.v1")
    extra = set(env) - _OLM_FIELDS
    if extra:
        raise InvalidEnvelope(f"unexpected envelope fields: {', '.join(sorted(extra))[:200]}")
    _check_sender_key(env, sender_key)
    ciphertexts = env.get("ciphertext")
    if not isinstance(ciphertexts, dict) or not ciphertexts:
        raise InvalidEnvelope("envelope field 'ciphertext' must map recipient keys to messages")
    if len(ciphertexts) > MAX_OLM_RECIPIENTS:
        raise InvalidEnvelope(f"at most {MAX_OLM_RECIPIENTS} recipient keys per envelope")
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
            raise InvalidEnvelope("ciphertext is not an Olm message") from exc
    return env
