"""The epoch scan skips, without decoding, only bodies that cannot be epochs."""

from __future__ import annotations

from clearpost.audit.keydir import _KEYDIR
from clearpost.core.tlog.entries import encode_entry, keydir_entry, partner_entry


def test_every_epoch_entry_carries_the_marker_and_other_entries_do_not() -> None:
    epoch = encode_entry(keydir_entry(3, b"\x01" * 32, 10, 5, 60, 300, b"\x02" * 32))
    assert _KEYDIR in epoch
    assert _KEYDIR not in encode_entry(partner_entry("streamco", "suspended", 5))


def test_the_marker_inside_a_string_is_escaped() -> None:
    # a partner id cannot hold quotes, but any string that did would be escaped
    body = encode_entry({"type": "scopes", "catalogue": ['"type":"keydir"'], "time": 1})
    assert _KEYDIR not in body


def test_the_scan_keeps_epochs_only_and_its_marker_rules_out_whole_bundles() -> None:
    from clearpost.audit.keydir import EpochScan
    from clearpost.core.tlog.c2sp_tiles import encode_bundle

    plain = encode_entry(partner_entry("streamco", "suspended", 5))
    epoch = encode_entry(keydir_entry(3, b"\x01" * 32, 10, 5, 60, 300, b"\x02" * 32))
    scan = EpochScan()
    assert scan.marker not in encode_bundle([plain] * 3)
    assert scan.marker in encode_bundle([plain, epoch])
    scan(512, [plain, epoch])
    scan.read_from(256)
    assert scan.found == [(513, epoch)] and scan.start == 256


def test_an_epochs_time_and_interval_are_read_and_an_interval_no_server_may_state_refused() -> None:
    import pytest

    from clearpost.audit.errors import KeyDirTransitionInvalid
    from clearpost.audit.keydir import _read_epoch

    entry = keydir_entry(3, b"\x01" * 32, 10, 5, 60, 300, b"\x02" * 32)
    time_ms, said = _read_epoch(entry, 7)
    assert (time_ms, said.log_seconds, said.heartbeat_seconds) == (5, 60, 300)
    assert _read_epoch(entry | {"log_seconds": 3600}, 7)[1].log_seconds == 3600
    older = {k: v for k, v in entry.items() if k != "log_seconds"}  # before it was logged
    assert _read_epoch(older, 7)[1].log_seconds is None
    for bad, words in (
        ({"log_seconds": 3601}, "no server may wait more than 3,600 s"),
        ({"log_seconds": -1}, "log_seconds is not a whole number"),
        ({"log_seconds": True}, "log_seconds is not a whole number"),
        ({"time": "5"}, "an epoch without a time"),
    ):
        with pytest.raises(KeyDirTransitionInvalid) as refused:
            _read_epoch(entry | bad, 7)
        assert words in refused.value.message and "log entry 7" in refused.value.message
