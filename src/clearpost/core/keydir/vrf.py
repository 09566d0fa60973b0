"""RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI (suite 0x03) on libsodium's edwards25519 arithmetic.

This is the dangerous layer of the key directory: the VRF maps a label to its tree index so the
server cannot choose indexes and nobody without a proof learns which labels exist. Secret keys
follow RFC 8032 (a 32-byte seed, clamped SHA-512 scalar); proofs are ``Gamma || c || s``
(32 + 16 + 32 bytes); outputs are 64 bytes.

Stricter than RFC 9381 on purpose, and only where an honest prover never goes: public keys and
``Gamma`` must be canonical points of the prime-order subgroup (libsodium's
``crypto_core_ed25519_is_valid_point``), so small-order and mixed-order points are refused, and
``s`` must be a canonical scalar (``s < L``). Errors say which check failed, never a secret.
"""

from __future__ import annotations

import hashlib

from nacl import bindings as _na
from nacl import exceptions as _nacl_errors

from clearpost.core.keydir.errors import VrfInvalid

__all__ = [
    "OUTPUT_SIZE",
    "PROOF_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "VrfSecretKey",
    "proof_to_hash",
    "verify",
]

SUITE = b"\x03"
"""suite_string of ECVRF-EDWARDS25519-SHA512-TAI."""

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
PROOF_SIZE = 80
OUTPUT_SIZE = 64
_C_LEN = 16
_L = 2**252 + 27742317777372353535851937790883648493
"""Order of the prime-order subgroup (q in RFC 9381)."""
_P = 2**255 - 19
_Y_MASK = (1 << 255) - 1
_IDENTITY = b"\x01" + bytes(31)


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def _times_cofactor(point: bytes) -> bytes:
    """8 * point by three doublings (libsodium's add accepts any point on the curve)."""
    for _ in range(3):
        point = _na.crypto_core_ed25519_add(point, point)
    return point


def _encode_to_curve(public_key: bytes, alpha: bytes) -> bytes:
    """RFC 9381 §5.4.1.1 try-and-increment, salted with the public key.

    A candidate is RFC 8032-decoded: ``y >= p`` is refused here, and libsodium's point
    addition refuses a ``y`` with no ``x`` on the curve. The one other RFC 8032 refusal (x = 0
    with the sign bit set) only concerns y = 1 and y = -1, small-order points whose cofactor
    multiple is the identity, which the loop skips anyway.
    """
    for ctr in range(256):
        h = _sha512(SUITE + b"\x01" + public_key + alpha + bytes([ctr]) + b"\x00")[:32]
        if int.from_bytes(h, "little") & _Y_MASK >= _P:
            continue
        try:
            point = _times_cofactor(h)
        except _nacl_errors.CryptoError:
            continue
        if point != _IDENTITY:
            return point
    raise VrfInvalid("no curve point found for this input (probability about 2**-256)")


def _challenge(*points: bytes) -> bytes:
    """RFC 9381 §5.4.3: the first cLen bytes of the hash of the five points."""
    return _sha512(SUITE + b"\x02" + b"".join(points) + b"\x00")[:_C_LEN]


def _scalar(c16: bytes) -> bytes:
    return c16 + bytes(32 - len(c16))


def _mul(scalar: bytes, point: bytes) -> bytes:
    return _na.crypto_scalarmult_ed25519_noclamp(scalar, point)


def _mul_base(scalar: bytes) -> bytes:
    return _na.crypto_scalarmult_ed25519_base_noclamp(scalar)


def _valid_point(point: bytes) -> bool:
    return len(point) == 32 and bool(_na.crypto_core_ed25519_is_valid_point(point))


class VrfSecretKey:
    """An ECVRF secret key. Build it with ``from_seed``; keep the seed secret."""

    __slots__ = ("_prefix", "_public", "_x")

    def __init__(self, *, _x: bytes, _prefix: bytes, _public: bytes) -> None:
        self._x = _x
        self._prefix = _prefix
        self._public = _public

    @classmethod
    def from_seed(cls, seed: bytes) -> VrfSecretKey:
        """The key of a 32-byte seed, as RFC 8032 derives an Ed25519 key from its secret."""
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_SIZE:
            raise ValueError(f"a VRF seed is {SEED_SIZE} bytes")
        digest = bytearray(_sha512(bytes(seed)))
        digest[0] &= 248
        digest[31] &= 127
        digest[31] |= 64
        x = _na.crypto_core_ed25519_scalar_reduce(bytes(digest[:32]) + bytes(32))
        return cls(_x=x, _prefix=bytes(digest[32:]), _public=_mul_base(x))

    @property
    def public_key(self) -> bytes:
        """The 32-byte public key ``x*B`` (point_to_string of Y)."""
        return self._public

    def prove(self, alpha: bytes) -> bytes:
        """RFC 9381 §5.1: the 80-byte proof ``Gamma || c || s`` for ``alpha``."""
        h = _encode_to_curve(self._public, bytes(alpha))
        gamma = _mul(self._x, h)
        k = _na.crypto_core_ed25519_scalar_reduce(_sha512(self._prefix + h))
        c = _challenge(self._public, h, gamma, _mul_base(k), _mul(k, h))
        s = _na.crypto_core_ed25519_scalar_add(
            k, _na.crypto_core_ed25519_scalar_mul(_scalar(c), self._x)
        )
        return gamma + c + s

    def evaluate(self, alpha: bytes) -> tuple[bytes, bytes]:
        """``(pi, beta)``: the proof for ``alpha`` and its 64-byte output."""
        pi = self.prove(alpha)
        return pi, proof_to_hash(pi)


def _decode_proof(pi: bytes) -> tuple[bytes, bytes, bytes]:
    """RFC 9381 §5.4.4, refusing points outside the prime-order subgroup and ``s >= L``."""
    if not isinstance(pi, bytes | bytearray) or len(pi) != PROOF_SIZE:
        raise VrfInvalid(f"a VRF proof is {PROOF_SIZE} bytes")
    pi = bytes(pi)
    gamma, c, s = pi[:32], pi[32:48], pi[48:]
    if not _valid_point(gamma):
        raise VrfInvalid("the proof's Gamma is not a canonical point of the prime-order group")
    if int.from_bytes(s, "little") >= _L:
        raise VrfInvalid("the proof's s is not a canonical scalar")
    return gamma, c, s


def proof_to_hash(pi: bytes) -> bytes:
    """RFC 9381 §5.2: the 64-byte output of a proof. Only meaningful after ``verify``."""
    gamma, _, _ = _decode_proof(pi)
    return _sha512(SUITE + b"\x03" + _times_cofactor(gamma) + b"\x00")


def verify(public_key: bytes, alpha: bytes, pi: bytes) -> bytes:
    """RFC 9381 §5.3 with key validation: the output ``beta``, or ``VrfInvalid``.

    Steps:
    1. decode the public key: canonical, on the curve, prime-order subgroup, not small order;
    2. decode the proof (Gamma valid like the key, ``s < L``);
    3. H = encode_to_curve(public key, alpha);
    4. U = s*B - c*Y and V = s*H - c*Gamma;
    5. the challenge of (Y, H, Gamma, U, V) must equal c;
    6. beta = proof_to_hash(pi).
    """
    # 1.
    if not isinstance(public_key, bytes | bytearray) or not _valid_point(bytes(public_key)):
        raise VrfInvalid("the VRF public key is not a canonical point of the prime-order group")
    y = bytes(public_key)
    # 2.
    gamma, c, s = _decode_proof(pi)
    try:
        # 3.
        h = _encode_to_curve(y, bytes(alpha))
        # 4.
        u = _na.crypto_core_ed25519_sub(_mul_base(s), _mul(_scalar(c), y))
        v = _na.crypto_core_ed25519_sub(_mul(s, h), _mul(_scalar(c), gamma))
    except _nacl_errors.CryptoError as exc:
        # libsodium refuses a zero scalar or an identity result: never from an honest prover
        raise VrfInvalid("the VRF proof does not verify") from exc
    # 5.
    if _challenge(y, h, gamma, u, v) != c:
        raise VrfInvalid("the VRF proof does not verify")
    # 6.
    return _sha512(SUITE + b"\x03" + _times_cofactor(gamma) + b"\x00")
