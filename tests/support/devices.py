"""A minimal real-crypto device for tests: vodozemac keys, signed uploads, real contents.

This is test support, not the SDK: it builds exactly the Matrix wire objects the server
checks (device keys, signed one-time and fallback keys, m.olm.v1 and m.megolm.v1 contents).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import vodozemac

from clearpost.core.canonical import matrix_signable


@dataclass
class TestDevice:
    __test__ = False  # not a pytest test class

    user_id: str
    device_id: str
    access_token: str
    account: vodozemac.Account = field(default_factory=vodozemac.Account)
    group: vodozemac.GroupSession = field(default_factory=vodozemac.GroupSession)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def curve(self) -> str:
        return self.account.curve25519_key.to_base64()

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        sig = self.account.sign(matrix_signable(obj)).to_base64()
        return {**obj, "signatures": {self.user_id: {f"ed25519:{self.device_id}": sig}}}

    def device_keys(self) -> dict[str, Any]:
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {
                    f"curve25519:{self.device_id}": self.curve,
                    f"ed25519:{self.device_id}": self.account.ed25519_key.to_base64(),
                },
            }
        )

    def one_time_keys(self, n: int) -> dict[str, Any]:
        self.account.generate_one_time_keys(n)
        keys = {
            f"signed_curve25519:{kid}": self.sign({"key": k.to_base64()})
            for kid, k in self.account.one_time_keys.items()
        }
        self.account.mark_keys_as_published()
        return keys

    def fallback_key(self) -> dict[str, Any]:
        """A signed fallback key, as ``fallback_keys`` of an upload."""
        self.account.generate_fallback_key()
        ((kid, key),) = self.account.fallback_key.items()
        return {f"signed_curve25519:{kid}": self.sign({"key": key.to_base64(), "fallback": True})}

    def megolm(self, plaintext: bytes = b"hello", *, deprecated: bool = False) -> dict[str, Any]:
        """m.megolm.v1.aes-sha2 content, as matrix-sdk-crypto sends it (``deprecated``: with
        the optional ``sender_key`` and ``device_id`` too)."""
        content = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "session_id": self.group.session_id,
            "ciphertext": self.group.encrypt(plaintext).to_base64(),
        }
        if deprecated:
            content |= {"sender_key": self.curve, "device_id": self.device_id}
        return content

    def olm_to(self, other_curve: str, other_otk: str, plaintext: bytes = b"key") -> dict[str, Any]:
        session = self.account.create_outbound_session(
            vodozemac.Curve25519PublicKey.from_base64(other_curve),
            vodozemac.Curve25519PublicKey.from_base64(other_otk),
        )
        kind, body = session.encrypt(plaintext).to_parts()
        return {
            "algorithm": "m.olm.v1.curve25519-aes-sha2",
            "sender_key": self.curve,
            "ciphertext": {
                other_curve: {"type": kind, "body": base64.b64encode(body).decode().rstrip("=")}
            },
        }
