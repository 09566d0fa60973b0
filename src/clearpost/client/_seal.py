"""DANGEROUS LAYER: authenticated encryption of device-store values, from stdlib primitives.

Why this exists: the store must seal values that are not vodozemac objects (the access
token, decrypted message bodies, withheld reasons) and the project's declared
dependencies offer no AEAD (vodozemac's PkEncryption does not authenticate its
ciphertext). Replace ``seal``/``unseal`` with AES-256-GCM from ``cryptography`` once that
package is a declared dependency; the callers will not change.

Construction (encrypt-then-MAC, independent keys, nothing novel):

1. ``nonce`` = 16 random bytes from ``os.urandom``.
2. keystream = SHAKE-256(``"clearpost-seal-v1" || enc_key || nonce``), as long as the
   data; ciphertext = data XOR keystream. (Keccak has no length extension, so a
   prefix-keyed SHAKE is a PRF; a 128-bit random nonce never repeats in practice.)
3. tag = HMAC-SHA-256(mac_key, ``version || nonce || len(aad) || aad || ciphertext``).
4. blob = ``version || nonce || ciphertext || tag``.

``unseal`` checks the tag in constant time before decrypting anything, and raises
``SealBroken`` without saying why.
"""

from __future__ import annotations

import hashlib
import hmac
import os

_VERSION = b"\x01"
_DOMAIN = b"clearpost-seal-v1"
_NONCE = 16
_TAG = 32


class SealBroken(Exception):
    """The blob was not sealed with these keys (wrong passphrase), or was altered."""


class Sealer:
    def __init__(self, enc_key: bytes, mac_key: bytes) -> None:
        if len(enc_key) != 32 or len(mac_key) != 32 or enc_key == mac_key:
            raise ValueError("the sealer needs two different 32-byte keys")
        self._mac = mac_key
        self._keyed = hashlib.shake_256(_DOMAIN + enc_key)  # copied per value, then fed the nonce

    def _xor(self, nonce: bytes, data: bytes) -> bytes:
        if not data:
            return b""
        xof = self._keyed.copy()
        xof.update(nonce)
        stream = xof.digest(len(data))
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            len(data), "big"
        )

    def _tag(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        header = _VERSION + nonce + len(aad).to_bytes(4, "big") + aad
        return hmac.digest(self._mac, header + ciphertext, "sha256")

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        ciphertext = self._xor(nonce, data)
        return _VERSION + nonce + ciphertext + self._tag(nonce, aad, ciphertext)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + _NONCE + _TAG or blob[:1] != _VERSION:
            raise SealBroken
        nonce, ciphertext, tag = blob[1 : 1 + _NONCE], blob[1 + _NONCE : -_TAG], blob[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(nonce, aad, ciphertext)):
            raise SealBroken
        return self._xor(nonce, ciphertext)
