"""The epoch scan skips, without decoding, only bodies that cannot be epochs."""

from __future__ import annotations

from clearpost.audit.keydir import _KEYDIR
from clearpost.core.tlog.entries import encode_entry, keydir_entry, partner_entry


def test_every_epoch_entry_carries_the_marker_and_other_entries_do_not() -> None:
    epoch = encode_entry(keydir_entry(3, b"\x01" * 32, 10, 5))
    assert _KEYDIR in epoch
    assert _KEYDIR not in encode_entry(partner_entry("streamco", "suspended", 5))


def test_the_marker_inside_a_string_is_escaped() -> None:
    # a partner id cannot hold quotes, but any string that did would be escaped
    body = encode_entry({"type": "scopes", "catalogue": ['"type":"keydir"'], "time": 1})
    assert _KEYDIR not in body


def test_a_bundle_without_the_marker_is_not_decoded_but_counts_as_read() -> None:
    from clearpost.audit.keydir import EpochScan
    from clearpost.core.tlog.c2sp_tiles import encode_bundle

    plain = encode_bundle([encode_entry(partner_entry("streamco", "suspended", 5))] * 3)
    epoch = encode_entry(keydir_entry(3, b"\x01" * 32, 10, 5))
    scan = EpochScan()
    assert scan.seen(256, plain) is False
    assert scan.start == 256  # what was read is known, so audit_epochs fetches nothing again
    assert scan.seen(512, encode_bundle([epoch])) is True
    scan(512, [epoch])
    assert scan.found == [(512, epoch)] and scan.start == 256
