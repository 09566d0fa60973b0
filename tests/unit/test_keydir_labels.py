"""The key directory's label values: what the server commits and every client recomputes."""

from __future__ import annotations

import hashlib

import pytest

from clearpost.core.errors import InvalidInput
from clearpost.core.keydir_labels import (
    EMPTY_CHAIN,
    devices_value,
    label,
    log_chain,
    log_value,
    parse_devices_value,
    parse_log_value,
)


def test_labels_name_the_kind_and_the_account() -> None:
    assert label("devices", "@alice") == b"devices:@alice"
    assert label("log", "@alice:example.org") == b"log:@alice:example.org"
    with pytest.raises(InvalidInput):
        label("keys", "@alice")


def test_a_device_list_is_canonical_and_sorted_by_device_id() -> None:
    b = {"device_id": "B", "keys": {"ed25519:B": "y"}, "user_id": "@a"}
    a = {"user_id": "@a", "device_id": "A", "keys": {"ed25519:A": "x"}}
    value = devices_value([b, a])
    assert value == devices_value([a, b])
    assert value.startswith(b'[{"device_id":"A","keys"')
    assert parse_devices_value(value) == [a, b]
    assert parse_devices_value(devices_value([])) == []
    with pytest.raises(InvalidInput):
        parse_devices_value(b'[ {"device_id":"A"}]')  # not canonical
    with pytest.raises(InvalidInput):
        parse_devices_value(b'{"device_id":"A"}')


def test_the_log_chain_is_a_sha256_chain_of_big_endian_indexes() -> None:
    step = b"clearpost/keydir/log-chain\n"
    one = hashlib.sha256(step + EMPTY_CHAIN + (7).to_bytes(8, "big")).digest()
    two = hashlib.sha256(step + one + (12).to_bytes(8, "big")).digest()
    assert log_chain([7, 12]) == (2, two)
    assert log_chain([12], one) == (1, two)  # an epoch extends the previous version's chain
    value = log_value(2, two)
    assert value == b'{"chain":"' + two.hex().encode() + b'","count":2}'
    assert parse_log_value(value) == (2, two)
    with pytest.raises(InvalidInput):
        parse_log_value(b'{"chain":"00","count":2}')
    with pytest.raises(InvalidInput):
        parse_log_value(b'{"count":2,"chain":"' + two.hex().encode() + b'"}')
