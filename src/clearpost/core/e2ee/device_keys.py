"""Matrix device keys, signed one-time keys and signed fallback keys (the E2EE module).

A device publishes (``POST /v1/keys/upload``)::

    {"user_id": "@alice:s", "device_id": "DEV",
     "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
     "keys": {"curve25519:DEV": <b64>, "ed25519:DEV": <b64>},
     "signatures": {"@alice:s": {"ed25519:DEV": <b64>}}}

The signature is Ed25519 over Matrix canonical JSON of the object without ``signatures``
and ``unsigned``. One-time keys are ``{"key": <curve25519 b64>, "signatures": ...}`` and
fallback keys the same with ``"fallback": true``, signed likewise by the device's Ed25519
key, so a server cannot substitute its own. "b64" is unpadded standard base64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import vodozemac

from clearpost.core.canonical import matrix_signable
from clearpost.core.errors import InvalidInput, SignatureInvalid

OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
ALGORITHMS = [OLM_ALGORITHM, MEGOLM_ALGORITHM]
"""What Clearpost's own devices advertise, and what every device must support."""
KNOWN_ALGORITHMS = frozenset({*ALGORITHMS, "m.olm.v2.curve25519-aes-sha2", "m.megolm.v2.aes-sha2"})
"""Matrix algorithm names a device may also list (they are never used here)."""
OLD_ALGORITHMS = frozenset({"olm.v1", "megolm.v1"})
"""Clearpost's names before 0.3: refused with a message that says what changed."""
KEY_ALGORITHM = "signed_curve25519"

_B64_KEY = re.compile(r"\A[A-Za-z0-9+/]{43}\Z")
"""A 32-byte key in unpadded standard base64."""


class UnsupportedAlgorithm(InvalidInput):
    code = "unsupported_algorithm"


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
        key.verify_signature(matrix_signable(obj), vodozemac.Ed25519Signature.from_base64(sig))
    except (vodozemac.KeyException, vodozemac.SignatureException, ValueError) as exc:
        raise SignatureInvalid("the signature does not verify") from exc


def check_algorithms(algorithms: Any) -> None:
    """``algorithms`` must list Olm and Megolm by their Matrix names; other known Matrix
    names are tolerated; Clearpost's old names and anything else are refused."""
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise InvalidInput("device_keys.algorithms must be a list of algorithm names")
    old = sorted(OLD_ALGORITHMS.intersection(algorithms))
    if old:
        raise UnsupportedAlgorithm(
            f"{', '.join(old)} are Clearpost's old algorithm names; use Matrix's: "
            f"{', '.join(ALGORITHMS)}"
        )
    unknown = [a for a in algorithms if a not in KNOWN_ALGORITHMS]
    if unknown:
        raise UnsupportedAlgorithm(f"unknown algorithm {unknown[0][:60]!r}")
    if not set(ALGORITHMS) <= set(algorithms):
        raise UnsupportedAlgorithm(f"device_keys.algorithms must include {', '.join(ALGORITHMS)}")


def parse_device_keys(obj: Any, user_id: str, device_id: str) -> DeviceIdentity:
    """Validate an uploaded device-keys object and its self-signature."""
    if not isinstance(obj, dict):
        raise InvalidInput("device_keys must be an object")
    if obj.get("user_id") != user_id or obj.get("device_id") != device_id:
        raise InvalidInput("device_keys must name this user and this device")
    check_algorithms(obj.get("algorithms"))
    keys = obj.get("keys")
    if not isinstance(keys, dict) or set(keys) != {
        f"curve25519:{device_id}",
        f"ed25519:{device_id}",
    }:
        raise InvalidInput("device_keys.keys must hold exactly curve25519:<dev> and ed25519:<dev>")
    curve, ed = keys[f"curve25519:{device_id}"], keys[f"ed25519:{device_id}"]
    if not (isinstance(curve, str) and _B64_KEY.match(curve)):
        raise InvalidInput("device_keys.keys holds a malformed key (unpadded base64 expected)")
    if not (isinstance(ed, str) and _B64_KEY.match(ed)):
        raise InvalidInput("device_keys.keys holds a malformed key (unpadded base64 expected)")
    try:
        vodozemac.Curve25519PublicKey.from_base64(curve)
        vodozemac.Ed25519PublicKey.from_base64(ed)
    except (vodozemac.KeyException, TypeError, ValueError) as exc:
        raise InvalidInput("device_keys.keys holds a malformed key") from exc
    verify_signed(obj, user_id, device_id, ed)
    return DeviceIdentity(curve25519=curve, ed25519=ed)


def parse_signed_key(
    obj: Any, user_id: str, device_id: str, ed25519: str, *, fallback: bool = False
) -> str:
    """Validate a signed one-time key (or, with ``fallback``, a fallback key, which carries
    ``"fallback": true``); return its Curve25519 key."""
    what = "a fallback key" if fallback else "a one-time key"
    shape = "{'key': <curve25519>, " + ("'fallback': true, " if fallback else "") + "'signatures'}"
    if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
        raise InvalidInput(f"{what} must be {shape}")
    allowed = {"key", "signatures", "fallback"} if fallback else {"key", "signatures"}
    if set(obj) - allowed:
        raise InvalidInput(f"unexpected fields in {what}; it must be {shape}")
    if fallback and obj.get("fallback") is not True:
        raise InvalidInput(f'{what} must carry "fallback": true')
    if not _B64_KEY.match(obj["key"]):
        raise InvalidInput(f"{what} is not a Curve25519 key in unpadded base64")
    try:
        vodozemac.Curve25519PublicKey.from_base64(obj["key"])
    except (vodozemac.KeyException, ValueError) as exc:
        raise InvalidInput(f"{what} is not a Curve25519 key") from exc
    verify_signed(obj, user_id, device_id, ed25519)
    return str(obj["key"])


def key_id(raw: str) -> str:
    """Key ids look like ``signed_curve25519:AAAAAQ``; the part after the colon is kept."""
    algorithm, _, kid = raw.partition(":")
    if algorithm != KEY_ALGORITHM or not kid or len(kid) > 64:
        if algorithm == "curve25519":
            raise UnsupportedAlgorithm(
                "unsigned curve25519 one-time keys are not accepted; upload signed_curve25519"
            )
        raise InvalidInput(f"key ids must be '{KEY_ALGORITHM}:<id>' (id up to 64 characters)")
    return kid
