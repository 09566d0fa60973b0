"""Reports: which cells are published, intervals, the document, its signature over RFC 8785
bytes, the log entry."""

from __future__ import annotations

import base64
import hashlib
import json
import math

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
    publish,
    report_bytes,
    report_entry,
    report_hash,
    verify_report,
)
from clearpost.core.tlog.entries import decode_entry, encode_entry

A, B, C = "https://s.example/a", "https://s.example/b", "https://s.example/c"
BOUNDS = Bounds(items_per_user=2, shares_per_item=1, clicks_per_share=1, recipients_per_share=5)
PERIOD = Period(1_767_571_200_000, 1_767_571_200_000 + 14 * 86_400_000)


PLAN = plan_release(1.0, BOUNDS, (A, B, C))
LIMIT = {s.metric: s.threshold for s in PLAN.measurements if s.threshold is not None}
MARGIN = {s.name: s.margin for s in PLAN.measurements}


def noisy() -> NoisyCounts:
    t = LIMIT["shares"]  # 4 x 2 / (1/8) = 64 scale; about 4.6 scales
    r = LIMIT["recipients"]
    return NoisyCounts(
        totals={"intents": 120, "shares": 61, "recipients": 150, "clicks": -3},
        items={
            A: {"intents": t + 80, "shares": t, "recipients": r, "clicks": 12},
            B: {"intents": 30, "shares": t - 1, "recipients": 20, "clicks": t + 40},
            C: {"intents": 11, "shares": 10, "recipients": -4, "clicks": 1},
        },
    )


def report(signer: ReportSigner, threshold: int = 10) -> dict[str, object]:
    return build_report(
        partner_id="streamco",
        agreement_version=3,
        period=PERIOD,
        released_at=PERIOD.end_ms + 600_000,
        plan=PLAN,
        noisy=noisy(),
        suppression_threshold=threshold,
        public_key=signer.public_key,
    )


def test_thresholds_follow_the_noise_scale_not_the_data() -> None:
    for spec in PLAN.measurements:
        if spec.threshold is None:
            assert spec.name.startswith("totals.")
            continue
        # a true 0 reaches the threshold with probability p^t / (1 + p) <= 0.005
        p = math.exp(-1 / spec.scale)
        assert p**spec.threshold / (1 + p) <= 0.005 < p ** (spec.threshold - 1) / (1 + p)
    for spec in PLAN.measurements:  # P(|noise| > margin) <= 0.05 < P(|noise| > margin - 1)
        p = math.exp(-1 / spec.scale)
        assert 2 * p ** (spec.margin + 1) / (1 + p) <= 0.05 < 2 * p**spec.margin / (1 + p)


def test_only_cells_that_reach_their_threshold_are_published() -> None:
    rows, left_out = publish(noisy(), PLAN, 10)
    assert [r["url"] for r in rows] == [A, B]  # C has no cell above its threshold: left out
    assert left_out == 1
    a, b = rows
    m = MARGIN["items.shares"]
    assert a["shares"] == {
        "value": LIMIT["shares"],
        "low": LIMIT["shares"] - m,
        "high": LIMIT["shares"] + m,
    }
    assert a["recipients"]["value"] == LIMIT["recipients"]
    assert a["clicks"] is None  # 12 noisy clicks: not published, not even as a row of A
    assert (
        b["shares"] is None
        and b["intents"] is None
        and b["clicks"]["value"] == LIMIT["clicks"] + 40
    )
    # the agreement's minimum applies when it is higher than the noise threshold
    assert publish(noisy(), PLAN, 10**6) == ([], 3)


def test_the_report_states_bounds_noise_intervals_and_the_release_rule() -> None:
    doc = report(ReportSigner.generate())
    assert doc["version"] == 2
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
    for m in privacy["measurements"]:
        assert m["margin95"] == MARGIN[m["name"]]
        assert ("threshold" in m) == m["name"].startswith("items.")
    assert privacy["release"]["alpha"] == 0.005 and privacy["release"]["minimum"] == 10
    totals = doc["totals"]
    assert isinstance(totals, dict)
    for metric, value in noisy().totals.items():  # as drawn, negative ones too, with intervals
        plus = MARGIN[f"totals.{metric}"]
        assert totals[metric] == {"value": value, "low": value - plus, "high": value + plus}
    assert doc["suppressed_items"] == 1
    assert [row["url"] for row in doc["items"]] == [A, B]  # type: ignore[attr-defined]
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


def test_a_roll_up_says_so_in_the_report_and_in_its_log_entry() -> None:
    window = Period(PERIOD.start_ms, PERIOD.start_ms + 91 * 86_400_000)
    noisy = NoisyCounts(
        dict.fromkeys(METRICS, 5), {k: dict.fromkeys(METRICS, 0) for k in (A, B, C)}
    )
    doc = build_report(
        partner_id="streamco",
        agreement_version=1,
        period=window,
        released_at=1234,
        plan=PLAN,
        noisy=noisy,
        suppression_threshold=10,
        public_key=ReportSigner.generate().public_key,
        rollup=True,
    )
    assert doc["kind"] == "rollup" and doc["period"]["id"] == "2026-01-05/2026-04-06"
    assert "kind" not in report(ReportSigner.generate())  # period reports read as before
    entry = report_entry("streamco", window.id, report_hash(doc), 0.5, 1234, rollup=True)
    assert decode_entry(encode_entry(entry)) == {
        "type": "report",
        "kind": "rollup",
        "partner": "streamco",
        "period": "2026-01-05/2026-04-06",
        "report_hash": report_hash(doc),
        "epsilon": 0.5,
        "time": 1234,
    }


def test_the_key_file_text_round_trips_and_bad_keys_are_refused() -> None:
    signer = ReportSigner.generate()
    again = ReportSigner.from_text(signer.reveal_text() + "\n")
    assert again.public_key == signer.public_key
    for bad in ("", "ed25519:", "ed25519:!!!", "rsa:AAAA", "ed25519:" + "A" * 40):
        with pytest.raises(InvalidInput):
            ReportSigner.from_text(bad)
