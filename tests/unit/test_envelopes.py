"""Ciphertext-only: what the server accepts as encrypted content (Matrix's m.megolm.v1 and
m.olm.v1), and what it refuses."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import vodozemac

from clearpost.core.canonical import matrix_canonical_json
from clearpost.core.e2ee.device_keys import (
    UnsupportedAlgorithm,
    parse_device_keys,
    parse_signed_key,
)
from clearpost.core.e2ee.envelope import validate_megolm_content, validate_olm_content
from clearpost.core.errors import InvalidEnvelope, InvalidInput, NotEncrypted, SignatureInvalid
from tests.support.devices import TestDevice


@pytest.fixture
def dev() -> TestDevice:
    return TestDevice("@alice:clearpost.localhost", "ALICEDEVIC", "token")


def test_a_real_megolm_envelope_passes(dev: TestDevice) -> None:
    env = dev.megolm(b"hi")
    assert set(env) == {"algorithm", "session_id", "ciphertext"}  # as matrix-sdk-crypto sends
    assert validate_megolm_content(env, sender_device=dev.device_id) == env
    old = dev.megolm(b"hi", deprecated=True)  # with the deprecated sender_key and device_id
    assert validate_megolm_content(old, sender_device=dev.device_id, sender_key=dev.curve) == old


@pytest.mark.parametrize(
    "name", ["megolm.v1", "m.megolm.v2.aes-sha2", "m.olm.v1.curve25519-aes-sha2"]
)
def test_old_and_other_algorithm_names_are_not_encrypted(dev: TestDevice, name: str) -> None:
    with pytest.raises(NotEncrypted):
        validate_megolm_content({**dev.megolm(), "algorithm": name}, sender_device=dev.device_id)


@pytest.mark.parametrize(
    "body",
    [
        {"body": "hello"},
        "hello",
        ["megolm.v1"],
        None,
        42,
        {"algorithm": "plain"},
        {"algorithm": "m.text"},
    ],
)
def test_anything_not_an_envelope_is_not_encrypted(body: Any) -> None:
    with pytest.raises(NotEncrypted):
        validate_megolm_content(body, sender_device="X")


@pytest.mark.parametrize(
    "change",
    [
        {"ciphertext": "aGVsbG8gd29ybGQ"},  # valid base64, not a Megolm message
        {"ciphertext": "!!!not base64!!!"},
        {"ciphertext": ""},
        {"sender_key": "short"},
        {"session_id": 7},
        {"device_id": "SOMEONEELS"},
        {"extra": "field"},
        {"m.relates_to": {"rel_type": "m.thread", "event_id": "$x"}},
    ],
)
def test_broken_envelopes_are_invalid(dev: TestDevice, change: dict[str, Any]) -> None:
    env = {**dev.megolm(), **change}
    with pytest.raises(InvalidEnvelope):
        validate_megolm_content(env, sender_device=dev.device_id)


def test_truncated_megolm_ciphertext_is_invalid(dev: TestDevice) -> None:
    env = dev.megolm()
    raw = base64.b64decode(env["ciphertext"] + "==")
    env["ciphertext"] = base64.b64encode(raw[:10]).decode().rstrip("=")
    with pytest.raises(InvalidEnvelope):
        validate_megolm_content(env, sender_device=dev.device_id)


def test_olm_envelopes(dev: TestDevice) -> None:
    bob = vodozemac.Account()
    bob.generate_one_time_keys(1)
    otk = next(iter(bob.one_time_keys.values())).to_base64()
    env = dev.olm_to(bob.curve25519_key.to_base64(), otk)
    assert validate_olm_content(env) == env
    with pytest.raises(NotEncrypted):
        validate_olm_content(dev.megolm())  # Megolm is not for to-device payloads
    with pytest.raises(NotEncrypted):
        validate_olm_content({**env, "algorithm": "olm.v1"})  # the pre-0.3 name
    tagged = {**env, "org.matrix.msgid": "abc"}
    assert validate_olm_content(tagged) == tagged
    recipient = bob.curve25519_key.to_base64()
    for bad in ({"type": 2, "body": "AAAA"}, {"type": 0, "body": "junk!"}, {"type": 1}, "text"):
        with pytest.raises(InvalidEnvelope):
            validate_olm_content({**env, "ciphertext": {recipient: bad}})


def test_device_keys_are_self_signed(dev: TestDevice) -> None:
    keys = dev.device_keys()
    ident = parse_device_keys(keys, dev.user_id, dev.device_id)
    assert ident.curve25519 == dev.curve
    tampered = {
        **keys,
        "keys": {**keys["keys"], f"curve25519:{dev.device_id}": TestDevice("@a:s", "B", "").curve},
    }
    with pytest.raises(SignatureInvalid):
        parse_device_keys(tampered, dev.user_id, dev.device_id)
    with pytest.raises(InvalidInput):
        parse_device_keys(keys, dev.user_id, "OTHERDEVIC")
    other = TestDevice(dev.user_id, dev.device_id, "")
    forged = {**keys, "signatures": other.device_keys()["signatures"]}
    with pytest.raises(SignatureInvalid):
        parse_device_keys(forged, dev.user_id, dev.device_id)


def test_one_time_keys_must_carry_the_device_signature(dev: TestDevice) -> None:
    ((_, signed),) = dev.one_time_keys(1).items()
    ed = dev.account.ed25519_key.to_base64()
    assert parse_signed_key(signed, dev.user_id, dev.device_id, ed) == signed["key"]
    with pytest.raises(SignatureInvalid):
        parse_signed_key({**signed, "key": dev.curve}, dev.user_id, dev.device_id, ed)


def test_an_envelope_must_name_the_senders_published_key(dev: TestDevice) -> None:
    env = dev.megolm(deprecated=True)
    validate_megolm_content(env, sender_device=dev.device_id, sender_key=dev.curve)
    other = TestDevice("@eve:s", "EVEDEVICEX", "").curve
    with pytest.raises(InvalidEnvelope, match="published"):
        validate_megolm_content(env, sender_device=dev.device_id, sender_key=other)


@pytest.mark.parametrize("kind", [0.0, 1.0, True, "0"])
def test_olm_message_type_must_be_an_integer(dev: TestDevice, kind: Any) -> None:
    bob = vodozemac.Account()
    bob.generate_one_time_keys(1)
    env = dev.olm_to(
        bob.curve25519_key.to_base64(), next(iter(bob.one_time_keys.values())).to_base64()
    )
    ((recipient, message),) = env["ciphertext"].items()
    with pytest.raises(InvalidEnvelope):
        validate_olm_content({**env, "ciphertext": {recipient: {**message, "type": kind}}})


def test_device_keys_need_the_matrix_algorithm_names(dev: TestDevice) -> None:
    keys = dev.device_keys()
    keys.pop("signatures")
    for algorithms in (["olm.v1", "megolm.v1"], ["m.olm.v1.curve25519-aes-sha2"], ["x"]):
        signed = dev.sign({**keys, "algorithms": algorithms})
        with pytest.raises(UnsupportedAlgorithm):
            parse_device_keys(signed, dev.user_id, dev.device_id)
    extra = dev.sign({**keys, "algorithms": [*keys["algorithms"], "m.megolm.v2.aes-sha2"]})
    assert parse_device_keys(extra, dev.user_id, dev.device_id).curve25519 == dev.curve


def test_fallback_keys_carry_their_flag(dev: TestDevice) -> None:
    ((_, signed),) = dev.fallback_key().items()
    ed = dev.account.ed25519_key.to_base64()
    key = parse_signed_key(signed, dev.user_id, dev.device_id, ed, fallback=True)
    assert key == signed["key"]
    with pytest.raises(InvalidInput):  # a fallback key is not a one-time key
        parse_signed_key(signed, dev.user_id, dev.device_id, ed)


def test_signatures_cover_matrix_canonical_json() -> None:
    obj = {"b": "é", "a": [1, {"d": None, "c": True}], "\U0001f600": "x", "\ufb01": "y"}
    assert matrix_canonical_json(obj) == (
        '{"a":[1,{"c":true,"d":null}],"b":"é","\ufb01":"y","\U0001f600":"x"}'.encode()
    )
    with pytest.raises(InvalidInput):
        matrix_canonical_json({"x": 1.5})
