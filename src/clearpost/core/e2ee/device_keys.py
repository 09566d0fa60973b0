"""Self-signed device identity keys and signed one-time keys.

A device publishes ``{"user_id", "device_id", "algorithms", "keys": {"curve25519:<dev>",
"ed25519:<dev>"}, "signatures": {<user>: {"ed25519:<dev>": sig}}}``. The signature is
Ed25519 over the RFC 8785 canonical form of the object without ``signatures`` and
``unsigned``. One-time and fallback keys are ``{"key": <curve25519>, "signatures": ...}``
signed the same way by the device's Ed25519 key, so a server cannot substitute its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import vodozemac

from clearpost.core.canonical import signable
from clearpost.core.errors import InvalidInput, SignatureInvalid

ALGORITHMS = ["olm.v1", "megolm.v1"]


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    curve25519: str
    ed25519: str


def _signature(obj: dict[str, Any], user_id: str, device_id: str) -> str:
    sigs = obj.get("signatures")
    if not isinstance(sigs, dict):
        raise SignatureInvalid("the object carries no signatures")
    by_user = sigs.get(user_id)
    sig = by_user.get(f"ed25519:{device_id}") if isinstance(by_user, dict) else None
    if not isinstance(sig, str):
        raise SignatureInvalid(f"no signature by ed25519:{device_id} of {user_id}")
    return sig


def verify_signed(obj: dict[str, Any], user_id: str, device_id: str, ed25519: str) -> None:
    """Return None if ``obj`` is signed by the device's Ed25519 key, else raise SignatureInvalid."""
    sig = _signature(obj, user_id, device_id)
    try:
        key = vodozemac.Ed25519PublicKey.from_base64(ed25519)
        key.verify_signature(signable(obj), vodozemac.Ed25519Signature.from_base64(sig))
    except (vodozemac.KeyException, vodozemac.SignatureException, ValueError) as exc:
        raise SignatureInvalid("the signature does not verify") from exc


def parse_device_keys(obj: Any, user_id: str, device_id: str) -> DeviceIdentity:
    """Validate an uploaded device-keys object and its self-signature."""
    if not isinstance(obj, dict):
        raise InvalidInput("device_keys must be an object")
    if obj.get("user_id") != user_id or obj.get("device_id") != device_id:
        raise InvalidInput("device_keys must name this user and this device")
    if obj.get("algorithms") != ALGORITHMS:
        raise InvalidInput(f"device_keys.algorithms must be {ALGORITHMS}")
    keys = obj.get("keys")
    if not isinstance(keys, dict) or set(keys) != {
        f"curve25519:{device_id}",
        f"ed25519:{device_id}",
    }:
        raise InvalidInput("device_keys.keys must hold exactly curve25519:<dev> and ed25519:<dev>")
    curve, ed = keys[f"curve25519:{device_id}"], keys[f"ed25519:{device_id}"]
    try:
        vodozemac.Curve25519PublicKey.from_base64(curve)
        vodozemac.Ed25519PublicKey.from_base64(ed)
    except (vodozemac.KeyException, TypeError, ValueError) as exc:
        raise InvalidInput("device_keys.keys holds a malformed key") from exc
    verify_signed(obj, user_id, device_id, ed)
    return DeviceIdentity(curve25519=curve, ed25519=ed)


def parse_signed_key(obj: Any, user_id: str, device_id: str, ed25519: str) -> str:
    """Validate a signed one-time or fallback key; return its Curve25519 key."""
    if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
        raise InvalidInput("a one-time key must be {'key': <curve25519>, 'signatures': {...}}")
    if set(obj) - {"key", "signatures", "fallback"}:
        raise InvalidInput("unexpected fields in a signed key")
    try:
        vodozemac.Curve25519PublicKey.from_base64(obj["key"])
    except (vodozemac.KeyException, ValueError) as exc:
        raise InvalidInput("a one-time key is not a Curve25519 key") from exc
    verify_signed(obj, user_id, device_id, ed25519)
    return str(obj["key"])
