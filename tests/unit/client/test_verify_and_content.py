"""Device key verification: self-signed Matrix device keys, pinned on first sight."""

from __future__ import annotations

from typing import Any

import pytest

from clearpost.client import DeviceVerificationFailed
from clearpost.client.model import Device
from clearpost.client.verify import verify_device
from tests.support.devices import TestDevice

BOB = "@bob:s.test"


def entry(dev: TestDevice, keys: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "device_id": dev.device_id,
        "display_name": "phone",
        "device_keys": dev.device_keys() if keys is None else keys,
    }


def test_a_self_signed_device_verifies() -> None:
    dev = TestDevice(BOB, "BOBPHONEAA", "token")
    got = verify_device(entry(dev), BOB, None)
    assert got == Device(BOB, "BOBPHONEAA", dev.curve, dev.account.ed25519_key.to_base64(), "phone")
    assert verify_device(entry(dev), BOB, got) == got  # same keys as pinned: fine


def test_bad_or_changed_keys_are_refused() -> None:
    dev = TestDevice(BOB, "BOBPHONEAA", "token")
    keys = dev.device_keys()
    forged = {
        **keys,
        "keys": {**keys["keys"], "curve25519:BOBPHONEAA": TestDevice("@x:s.test", "X", "t").curve},
    }
    with pytest.raises(DeviceVerificationFailed, match="signature"):
        verify_device(entry(dev, forged), BOB, None)
    with pytest.raises(DeviceVerificationFailed):
        verify_device(entry(dev), "@mallory:s.test", None)  # keys that name another user
    pinned = verify_device(entry(dev), BOB, None)
    other = TestDevice(BOB, "BOBPHONEAA", "token")  # same id, new keys: a swap
    with pytest.raises(DeviceVerificationFailed) as caught:
        verify_device(entry(other), BOB, pinned)
    assert caught.value.code == "device_keys_changed"
    with pytest.raises(DeviceVerificationFailed) as caught:
        verify_device({"device_id": "NOKEYSAAAA", "device_keys": None}, BOB, None)
    assert caught.value.code == "device_without_keys"
