"""Device key verification, message content, and control payload formats."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import vodozemac

from clearpost.client import DeviceVerificationFailed, ShareCard, Text, UnsupportedContent
from clearpost.client import content as content_mod
from clearpost.client.model import Device
from clearpost.client.verify import verify_device
from clearpost.core.e2ee import control
from tests.support.devices import TestDevice


def entry(dev: TestDevice, keys: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "device_id": dev.device_id,
        "display_name": "phone",
        "device_keys": dev.device_keys() if keys is None else keys,
    }


def test_a_self_signed_device_verifies() -> None:
    dev = TestDevice("@bob", "BOBPHONEAA", "token")
    got = verify_device(entry(dev), "@bob", None)
    assert got == Device(
        "@bob", "BOBPHONEAA", dev.curve, dev.account.ed25519_key.to_base64(), "phone"
    )
    assert verify_device(entry(dev), "@bob", got) == got  # same keys as pinned: fine


def test_bad_or_changed_keys_are_refused() -> None:
    dev = TestDevice("@bob", "BOBPHONEAA", "token")
    keys = dev.device_keys()
    forged = {
        **keys,
        "keys": {**keys["keys"], "curve25519:BOBPHONEAA": TestDevice("@x", "X", "t").curve},
    }
    with pytest.raises(DeviceVerificationFailed, match="signature"):
        verify_device(entry(dev, forged), "@bob", None)
    with pytest.raises(DeviceVerificationFailed):
        verify_device(entry(dev), "@mallory", None)  # keys that name another user
    pinned = verify_device(entry(dev), "@bob", None)
    other = TestDevice("@bob", "BOBPHONEAA", "token")  # same id, new keys: a swap
    with pytest.raises(DeviceVerificationFailed) as caught:
        verify_device(entry(other), "@bob", pinned)
    assert caught.value.code == "device_keys_changed"
    with pytest.raises(DeviceVerificationFailed) as caught:
        verify_device({"device_id": "NOKEYSAAAA", "device_keys": None}, "@bob", None)
    assert caught.value.code == "device_without_keys"


def test_content_round_trips_with_its_conversation() -> None:
    for item in (Text("hi"), ShareCard("A film", "https://cp.example/s/abc", "preview", "FilmCo")):
        data = content_mod.encode("c_1", item)
        assert orjson.loads(data)["v"] == content_mod.VERSION
        assert content_mod.decode("c_1", data) == item
    with pytest.raises(UnsupportedContent) as caught:
        content_mod.decode("c_2", content_mod.encode("c_1", Text("moved")))
    assert caught.value.code == "wrong_conversation"
    for bad in (
        b"not json",
        b"[]",
        b'{"v": 2, "conversation_id": "c_1", "type": "text", "body": "x"}',
        b'{"v": 1, "conversation_id": "c_1", "type": "poll"}',
        b'{"v": 1, "conversation_id": "c_1", "type": "text", "body": 5}',
    ):
        with pytest.raises(UnsupportedContent):
            content_mod.decode("c_1", bad)
    assert (
        ShareCard("A film", "https://x/s/1", via="FilmCo").summary()
        == "[A film] https://x/s/1 (via FilmCo)"
    )


def test_control_payloads_parse_back() -> None:
    me = control.DeviceRef("@a", "AAAAAAAAAA", "ed")
    you = control.DeviceRef("@b", "BBBBBBBBBB", "ed2")
    key = control.RoomKey(
        "c_1",
        "sid",
        vodozemac.GroupSession().session_key.to_base64(),
        False,
        0,
        ("@a", "@b"),
        control.Origin("@a", "AAAAAAAAAA", "curve", "ed"),
    )
    payload = control.parse(control.build(control.ROOM_KEY, control.room_key_content(key), me, you))
    assert payload.sender == me and payload.recipient == you
    assert control.parse_room_key(payload.content) == key
    req = control.KeyRequest("c_1", "sid", "AAAAAAAAAA", 3, "r1")
    assert control.parse_key_request(control.key_request_content(req)) == req
    w = control.Withheld("c_1", "sid", control.WITHHELD_NOT_MEMBER_THEN, "not a member then")
    assert control.parse_withheld(control.withheld_content(w)) == w
    for bad in (
        b"{}",
        b'{"v": 1, "type": "room_key"}',
        b"junk",
        orjson.dumps({"v": 1, "type": "nope", "content": {}}),
    ):
        with pytest.raises(control.InvalidPayload):
            control.parse(bad)
    with pytest.raises(control.InvalidPayload):
        control.parse_room_key({**control.room_key_content(key), "members": "everyone"})
