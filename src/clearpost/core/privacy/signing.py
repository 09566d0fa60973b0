"""Ed25519 signatures over reports' RFC 8785 bytes.

The signature covers exactly ``canonical_json(report)``; the report names its own signing
key, and that key is therefore also covered by the hash in the log's ``report`` entry.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from clearpost.core.canonical import canonical_json
from clearpost.core.errors import InvalidInput, SignatureInvalid

KEY_PREFIX = "ed25519:"


class ReportSigner:
    """The server's report signing key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        """Base64 of the raw 32-byte Ed25519 public key."""

    @classmethod
    def generate(cls) -> ReportSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> ReportSigner:
        """Parse ``ed25519:<base64 of the 32-byte seed>`` (the key file's content)."""
        text = text.strip()
        if not text.startswith(KEY_PREFIX):
            raise InvalidInput("a report key is 'ed25519:' followed by base64")
        try:
            seed = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("the report key is not valid base64") from exc
        if len(seed) != 32:
            raise InvalidInput("a report key holds a 32-byte Ed25519 seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def reveal_text(self) -> str:
        """The private key as key-file text. Secret: write it only to a 0600 file."""
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return KEY_PREFIX + base64.b64encode(seed).decode()

    def sign(self, report: dict[str, Any]) -> str:
        """Base64 Ed25519 signature over the report's canonical bytes."""
        return base64.b64encode(self._key.sign(canonical_json(report))).decode()


def verify_report(report: dict[str, Any], signature: str, public_key: str) -> None:
    """Return None if ``signature`` is ``public_key``'s over the report; raise otherwise.

    Steps:
    1. Decode the key (32 raw bytes) and the signature (64 bytes) from base64.
    2. The report must name that same key in ``signing_key``.
    3. Verify Ed25519 over the RFC 8785 bytes of the report.
    """
    try:  # 1
        raw_key = base64.b64decode(public_key, validate=True)
        raw_sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("the report key or signature is not base64") from exc
    if len(raw_key) != 32 or len(raw_sig) != 64:
        raise SignatureInvalid("an Ed25519 key is 32 bytes and a signature 64")
    named = report.get("signing_key")  # 2
    if not isinstance(named, dict) or named.get("public_key") != public_key:
        raise SignatureInvalid("the report does not name this signing key")
    try:  # 3
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_sig, canonical_json(report))
    except InvalidSignature as exc:
        raise SignatureInvalid("the report signature does not verify") from exc
