"""``log_witness_urls``: which witnesses the log pushes checkpoints to."""

from __future__ import annotations

import pytest

from clearpost.audit import generate_witness_key
from clearpost.core.tlog import CosignatureVerifier
from clearpost.server.services.witnesspush import parse_targets


def test_targets_must_name_configured_witnesses_and_http_urls() -> None:
    cosigner, _ = generate_witness_key("w.example/a")
    known = [CosignatureVerifier.from_vkey(cosigner.vkey)]
    (target,) = parse_targets(" w.example/a=http://127.0.0.1:9/w/ , ", known)
    assert target.url == "http://127.0.0.1:9/w" and target.verifier.name == "w.example/a"
    assert parse_targets("", known) == []
    for bad in ("w.example/b=http://x", "w.example/a=ftp://x", "w.example/a"):
        with pytest.raises(ValueError):
            parse_targets(bad, known)
