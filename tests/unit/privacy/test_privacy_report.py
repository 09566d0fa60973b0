"""Reports: suppression, the document, its signature over RFC 8785 bytes, the log entry."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clearpost.core.errors import InvalidInput, SignatureInvalid
from clearpost.core.privacy import (
    METRICS,
    Bounds,
    NoisyCounts,
    Period,
    ReportSigner,
    build_report,
    plan_release,
    report_bytes,
    report_entry,
    report_hash,
    suppress,
    verify_report,
)
from clearpost.core.tlog.entries import decode_entry, encode_entry

A, B, C = "https://s.example/a", "https://s.example/b", "https://s.example/c"
BOUNDS = Bounds(items_per_user=2, shares_per_item=1, clicks_per_share=1, recipients_per_share=5)
PERIOD = Period(1_767_571_200_000, 1_767_571_200_000 + 14 * 86_400_000)


def noisy() -> NoisyCounts:
    return NoisyCounts(
        totals={"intents": 120, "shares": 61, "recipients": 150, "clicks": -3},
        items={
            A: {"intents": 80, "shares": 40, "recipients": 90, "clicks": 12},
            B: {"intents": 30, "shares": 9, "recipients": 20, "clicks": 40},
            C: {"intents": 11, "shares": 10, "recipients": -4, "clicks": 1},
        },
    )


def report(signer: ReportSigner, threshold: int = 10) -> dict[str, object]:
    return build_report(
        partner_id="streamco",
        agreement_version=3,
        period=PERIOD,
        released_at=PERIOD.end_ms + 600_000,
        plan=plan_release(1.0, BOUNDS, (A, B, C)),
        noisy=noisy(),
        suppression_threshold=threshold,
        public_key=signer.public_key,
    )


def test_items_under_the_threshold_of_noisy_shares_are_left_out() -> None:
    rows, suppressed = suppress(noisy(), 10)
    assert [r["url"] for r in rows] == [A, C]  # B has 9 noisy shares (and many clicks): out
    assert suppressed == 1
    assert rows[1] == {"url": C, "intents": 11, "shares": 10, "recipients": -4, "clicks": 1}
    assert suppress(noisy(), 0)[1] == 0
    assert suppress(noisy(), 41) == ([], 3)


def test_the_report_states_bounds_noise_and_suppression() -> None:
    doc = report(ReportSigner.generate())
    assert doc["partner"] == "streamco" and doc["agreement_version"] == 3
    assert doc["period"] == {
        "id": "2026-01-05/2026-01-19",
        "start": PERIOD.start_ms,
        "end": PERIOD.end_ms,
    }
    privacy = doc["privacy"]
    assert isinstance(privacy, dict)
    assert privacy["bounds"] == {
        "items_per_user": 2,
        "shares_per_item": 1,
        "clicks_per_share": 1,
        "recipients_per_share": 5,
    }
    assert privacy["epsilon"] == 1.0 and 1 - 1e-9 <= privacy["opendp_epsilon"] <= 1.0
    assert len(privacy["measurements"]) == 8
    assert privacy["suppression"] == {"metric": "shares", "threshold": 10}
    assert doc["totals"] == noisy().totals  # noisy values as they came, negative ones too
    assert doc["suppressed_items"] == 1
    assert [row["url"] for row in doc["items"]] == [A, C]  # type: ignore[attr-defined]
    assert set(doc["items"][0]) == {"url", *METRICS}  # type: ignore[index]


def test_the_signature_verifies_with_the_published_key_over_rfc8785_bytes() -> None:
    signer = ReportSigner.generate()
    doc = report(signer)
    signature = signer.sign(doc)
    # independently of our code: rfc8785 + cryptography
    canonical = rfc8785.dumps(json.loads(json.dumps(doc)))
    assert canonical == report_bytes(doc)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer.public_key))
    key.verify(base64.b64decode(signature), canonical)
    assert report_hash(doc) == hashlib.sha256(canonical).hexdigest()
    verify_report(doc, signature, signer.public_key)


def test_a_changed_report_or_another_key_does_not_verify() -> None:
    signer, other = ReportSigner.generate(), ReportSigner.generate()
    doc = report(signer)
    signature = signer.sign(doc)
    tampered = {**doc, "totals": {**doc["totals"], "shares": 62}}  # type: ignore[dict-item]
    with pytest.raises(SignatureInvalid):
        verify_report(tampered, signature, signer.public_key)
    with pytest.raises(SignatureInvalid):  # the report names the real key
        verify_report(doc, signature, other.public_key)
    renamed = {**doc, "signing_key": {"alg": "Ed25519", "public_key": other.public_key}}
    with pytest.raises(SignatureInvalid):
        verify_report(renamed, other.sign(doc), other.public_key)
    with pytest.raises(SignatureInvalid):
        verify_report(doc, "not base64!", signer.public_key)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer.public_key))
    with pytest.raises(InvalidSignature):
        key.verify(base64.b64decode(signature), report_bytes(tampered))


def test_the_log_entry_names_partner_period_hash_and_epsilon() -> None:
    doc = report(ReportSigner.generate())
    entry = report_entry("streamco", PERIOD.id, report_hash(doc), 1.0, 1234)
    raw = encode_entry(entry)
    assert decode_entry(raw) == {
        "type": "report",
        "partner": "streamco",
        "period": "2026-01-05/2026-01-19",
        "report_hash": report_hash(doc),
        "epsilon": 1.0,
        "time": 1234,
    }


def test_the_key_file_text_round_trips_and_bad_keys_are_refused() -> None:
    signer = ReportSigner.generate()
    again = ReportSigner.from_text(signer.reveal_text() + "\n")
    assert again.public_key == signer.public_key
    for bad in ("", "ed25519:", "ed25519:!!!", "rsa:AAAA", "ed25519:" + "A" * 40):
        with pytest.raises(InvalidInput):
            ReportSigner.from_text(bad)
