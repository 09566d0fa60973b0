"""RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI: the appendix B.3 vectors and every refusal."""

from __future__ import annotations

import pytest
from nacl import bindings

from clearpost.core.keydir.errors import VrfInvalid
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash, verify

# RFC 9381 appendix B.3, examples 16-18: (SK, PK, alpha, pi, beta)
RFC9381_B3 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b190bed"
        "1f479d9727d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
        "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff66b71dda49d2de59d03450451a"
        "f026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f2fea45c"
        "92a465301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
        "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94db5e5b54c"
        "70a848a0bef4553a41befc57663b56373a5031",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf8096bb474e53895c362d8628ee9f"
        "9ea3c0e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
        "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c452118fec1219202a0edcf038bb6"
        "373241578be7217ba85a2687f7a0310b2df19f",
    ),
]

L = 2**252 + 27742317777372353535851937790883648493

# The eight points of small order (libsodium's blocklist), canonical encodings.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]
# y >= p: y = p (0), p + 1 (1), p + 2 (2), 2**255 - 1 (18)
NON_CANONICAL = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


@pytest.mark.parametrize(("sk", "pk", "alpha", "pi", "beta"), RFC9381_B3)
def test_rfc9381_appendix_b3(sk: str, pk: str, alpha: str, pi: str, beta: str) -> None:
    key = VrfSecretKey.from_seed(bytes.fromhex(sk))
    assert key.public_key.hex() == pk
    assert key.prove(bytes.fromhex(alpha)).hex() == pi
    assert proof_to_hash(bytes.fromhex(pi)).hex() == beta
    assert verify(bytes.fromhex(pk), bytes.fromhex(alpha), bytes.fromhex(pi)).hex() == beta
    assert key.evaluate(bytes.fromhex(alpha)) == (bytes.fromhex(pi), bytes.fromhex(beta))


def _example() -> tuple[bytes, bytes, bytes]:
    _, pk, alpha, pi, _ = RFC9381_B3[2]
    return bytes.fromhex(pk), bytes.fromhex(alpha), bytes.fromhex(pi)


def test_other_input_or_other_key_fails() -> None:
    pk, alpha, pi = _example()
    with pytest.raises(VrfInvalid):
        verify(pk, alpha + b"\x00", pi)
    other = VrfSecretKey.from_seed(bytes(32)).public_key
    with pytest.raises(VrfInvalid):
        verify(other, alpha, pi)


@pytest.mark.parametrize("position", [0, 31, 32, 47, 48, 79])
def test_any_flipped_bit_fails(position: int) -> None:
    pk, alpha, pi = _example()
    bad = bytearray(pi)
    bad[position] ^= 0x01
    with pytest.raises(VrfInvalid):
        verify(pk, alpha, bytes(bad))


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_small_order_public_keys_are_refused(point: str) -> None:
    _, alpha, pi = _example()
    with pytest.raises(VrfInvalid, match="public key"):
        verify(bytes.fromhex(point), alpha, pi)


def test_mixed_order_public_key_is_refused() -> None:
    pk, alpha, pi = _example()
    mixed = bindings.crypto_core_ed25519_add(pk, bytes.fromhex(SMALL_ORDER[4]))
    with pytest.raises(VrfInvalid, match="public key"):
        verify(mixed, alpha, pi)


@pytest.mark.parametrize("point", NON_CANONICAL)
def test_non_canonical_public_keys_are_refused(point: str) -> None:
    _, alpha, pi = _example()
    with pytest.raises(VrfInvalid, match="public key"):
        verify(bytes.fromhex(point), alpha, pi)


@pytest.mark.parametrize("point", NON_CANONICAL + SMALL_ORDER)
def test_non_canonical_or_small_order_gamma_is_refused(point: str) -> None:
    pk, alpha, pi = _example()
    with pytest.raises(VrfInvalid, match="Gamma"):
        verify(pk, alpha, bytes.fromhex(point) + pi[32:])
    with pytest.raises(VrfInvalid, match="Gamma"):
        proof_to_hash(bytes.fromhex(point) + pi[32:])


def test_non_canonical_scalar_is_refused() -> None:
    """s + L is the same scalar mod L, so only the canonical-encoding check stops it."""
    pk, alpha, pi = _example()
    s = int.from_bytes(pi[48:], "little")
    with pytest.raises(VrfInvalid, match="scalar"):
        verify(pk, alpha, pi[:48] + (s + L).to_bytes(32, "little"))


@pytest.mark.parametrize("size", [0, 79, 81])
def test_wrong_sizes_are_refused(size: int) -> None:
    pk, alpha, _ = _example()
    with pytest.raises(VrfInvalid):
        verify(pk, alpha, bytes(size))
    with pytest.raises(VrfInvalid):
        verify(pk[:31], alpha, bytes(80))
    with pytest.raises(ValueError):
        VrfSecretKey.from_seed(bytes(size))


def test_outputs_are_deterministic_and_distinct() -> None:
    key = VrfSecretKey.from_seed(bytes(range(32)))
    pi1, beta1 = key.evaluate(b"devices:@alice:example.org")
    assert key.evaluate(b"devices:@alice:example.org") == (pi1, beta1)
    assert key.evaluate(b"devices:@bob:example.org")[1] != beta1
    assert verify(key.public_key, b"devices:@alice:example.org", pi1) == beta1


def _rfc8032_decodes(s: bytes) -> bool:
    """RFC 8032 §5.1.3 point decoding, spelled out (the reference for the candidates)."""
    p = 2**255 - 19
    d = (-121665 * pow(121666, p - 2, p)) % p
    y = int.from_bytes(s, "little") & ((1 << 255) - 1)
    if y >= p:
        return False
    u, v = (y * y - 1) % p, (d * y * y + 1) % p
    x = (u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p)) % p
    if (v * x * x) % p != u:
        if (v * x * x) % p != (-u) % p:
            return False
        x = (x * pow(2, (p - 1) // 4, p)) % p
    return not (x == 0 and s[31] >> 7)


def test_hash_to_curve_candidates_decode_as_rfc8032_says() -> None:
    """The encoder's cheap test (y < p, then libsodium's addition) accepts exactly the
    candidates RFC 8032 decodes, but for x = 0 points, which are small order and skipped."""
    import random

    from nacl import exceptions as nacl_errors

    rng = random.Random(5)
    candidates = [rng.randbytes(32) for _ in range(1500)]
    candidates += [bytes.fromhex(s) for s in SMALL_ORDER + NON_CANONICAL]
    for s in candidates:
        try:
            bindings.crypto_core_ed25519_add(s, s)
            libsodium = int.from_bytes(s, "little") & ((1 << 255) - 1) < 2**255 - 19
        except nacl_errors.CryptoError:
            libsodium = False
        x_zero = s[:31] in (b"\x01" + bytes(30), b"\xec" + b"\xff" * 30) and s[31] & 0x7F in (
            0,
            0x7F,
        )
        assert libsodium == _rfc8032_decodes(s) or x_zero, s.hex()
