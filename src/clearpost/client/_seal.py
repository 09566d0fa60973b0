"""Authenticated encryption of device-store values: AES-256-GCM from ``cryptography``.

The store seals what is not a vodozemac object (the access token, decrypted message
bodies, withheld reasons) with keys derived from the passphrase (``store._derive``).

Blob, version 2 (everything written now):
``0x02 || nonce (12 random bytes) || AES-256-GCM(enc_key, nonce, data, aad=0x02 || aad)``
(ciphertext followed by the 16-byte tag). Random 96-bit nonces stay within NIST SP
800-38D's bound for up to 2**32 seals under one key; a device store seals about two
values per message it sends or receives. Nonces are drawn from ``os.urandom`` 256 at a
time (one system call per 256 seals instead of one per seal, which cost as much as the
encryption itself here); a forked child discards the parent's unused ones.

Blob, version 1 (stores written before AES-GCM; read, never written): encrypt-then-MAC
from stdlib primitives — a SHAKE-256 keystream (``"clearpost-seal-v1" || enc_key ||
nonce``) XORed onto the data, then HMAC-SHA-256 with ``mac_key`` over
``0x01 || nonce || len(aad) || aad || ciphertext``; ``0x01 || nonce(16) || ciphertext ||
tag(32)``. Kept so that stores made by earlier versions still open; a value is
re-sealed as version 2 whenever it is written again.

``unseal`` raises ``SealBroken`` without saying why (wrong key, or altered blob).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import weakref

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_V2 = b"\x02"
_V2_NONCE = 12
_V2_TAG = 16

_V1 = b"\x01"
_V1_DOMAIN = b"clearpost-seal-v1"
_V1_NONCE = 16
_V1_TAG = 32


_POOL = 256 * _V2_NONCE
_pools: weakref.WeakSet[Sealer] = weakref.WeakSet()  # so a forked child can drop their nonces


def _forget_nonces_after_fork() -> None:
    for sealer in _pools:
        sealer._nonces, sealer._used = b"", 0


os.register_at_fork(after_in_child=_forget_nonces_after_fork)


class SealBroken(Exception):
    """The blob was not sealed with these keys (wrong passphrase), or was altered."""


class Sealer:
    def __init__(self, enc_key: bytes, mac_key: bytes) -> None:
        if len(enc_key) != 32 or len(mac_key) != 32 or enc_key == mac_key:
            raise ValueError("the sealer needs two different 32-byte keys")
        self._aead = AESGCM(enc_key)
        self._v1_enc = enc_key
        self._v1_mac = mac_key  # version 1 only: AES-GCM authenticates with enc_key
        self._nonces, self._used = b"", 0
        _pools.add(self)

    def _nonce(self) -> bytes:
        if self._used >= len(self._nonces):
            self._nonces, self._used = os.urandom(_POOL), 0
        nonce = self._nonces[self._used : self._used + _V2_NONCE]
        self._used += _V2_NONCE
        return nonce

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = self._nonce()
        return _V2 + nonce + self._aead.encrypt(nonce, data, _V2 + aad)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        version = blob[:1]
        if version == _V2 and len(blob) >= 1 + _V2_NONCE + _V2_TAG:
            try:
                return self._aead.decrypt(blob[1 : 1 + _V2_NONCE], blob[1 + _V2_NONCE :], _V2 + aad)
            except InvalidTag:
                raise SealBroken from None
        if version == _V1 and len(blob) >= 1 + _V1_NONCE + _V1_TAG:
            return self._unseal_v1(blob, aad)
        raise SealBroken

    def _unseal_v1(self, blob: bytes, aad: bytes) -> bytes:
        nonce, ciphertext, tag = (
            blob[1 : 1 + _V1_NONCE],
            blob[1 + _V1_NONCE : -_V1_TAG],
            blob[-_V1_TAG:],
        )
        header = _V1 + nonce + len(aad).to_bytes(4, "big") + aad
        if not hmac.compare_digest(tag, hmac.digest(self._v1_mac, header + ciphertext, "sha256")):
            raise SealBroken
        if not ciphertext:
            return b""
        stream = hashlib.shake_256(_V1_DOMAIN + self._v1_enc + nonce).digest(len(ciphertext))
        return (int.from_bytes(ciphertext, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            len(ciphertext), "big"
        )
