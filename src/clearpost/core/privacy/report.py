"""The report document: noisy counts, suppression, the privacy parameters, the log entry.

A report is a JSON object, signed and hashed over its RFC 8785 canonical bytes. It says
what was counted, the contribution bounds, every measurement's sensitivity, epsilon and
noise scale, and the suppression rule, so a reader can judge the numbers without asking.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clearpost.core.canonical import canonical_json
from clearpost.core.privacy.bounds import METRICS
from clearpost.core.privacy.ledger import Period
from clearpost.core.privacy.mechanism import NoisyCounts, ReleasePlan

REPORT_TYPE = "clearpost.partner-report"
REPORT_VERSION = 1
ROW_METRIC = "shares"
"""An item's row is listed only if its noisy count of shares sent reaches the threshold."""

UNIT = (
    "one user: the share intents made for them, the shares they sent, the recipients of "
    "those shares and the clicks on their share links"
)


def suppress(noisy: NoisyCounts, threshold: int) -> tuple[list[dict[str, Any]], int]:
    """Per-item rows whose noisy shares count is at least ``threshold`` (sorted by URL), and
    how many rows were left out. Only noisy values are compared (post-processing)."""
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for url in sorted(noisy.items):
        counts = noisy.items[url]
        if counts[ROW_METRIC] < threshold:
            suppressed += 1
            continue
        rows.append({"url": url, **{m: counts[m] for m in METRICS}})
    return rows, suppressed


def build_report(
    *,
    partner_id: str,
    agreement_version: int,
    period: Period,
    released_at: int,
    plan: ReleasePlan,
    noisy: NoisyCounts,
    suppression_threshold: int,
    public_key: str,
) -> dict[str, Any]:
    """The report object that is signed, hashed, logged and handed to the partner."""
    rows, suppressed = suppress(noisy, suppression_threshold)
    return {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        "partner": partner_id,
        "agreement_version": agreement_version,
        "period": period.to_json(),
        "released_at": released_at,
        "signing_key": {"alg": "Ed25519", "public_key": public_key},
        "privacy": {
            "unit": UNIT,
            "epsilon": plan.epsilon,
            "opendp_epsilon": plan.composed_epsilon,
            "mechanism": "discrete Laplace on integer counts (OpenDP make_laplace)",
            "composition": "basic sequential composition of the measurements (pure DP)",
            "bounds": plan.bounds.to_json(),
            "measurements": [m.to_json() for m in plan.measurements],
            "suppression": {"metric": ROW_METRIC, "threshold": suppression_threshold},
        },
        "totals": {m: noisy.totals[m] for m in METRICS},
        "items": rows,
        "suppressed_items": suppressed,
    }


def report_bytes(report: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes that are signed and hashed."""
    return canonical_json(report)


def report_hash(report: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes: what the log's ``report`` entry records."""
    return hashlib.sha256(report_bytes(report)).hexdigest()


def report_entry(
    partner_id: str, period: str, report_hash_hex: str, epsilon: float, time_ms: int
) -> dict[str, Any]:
    """A report was released: appended to the log before the partner can fetch it."""
    return {
        "type": "report",
        "partner": partner_id,
        "period": period,
        "report_hash": report_hash_hex,
        "epsilon": epsilon,
        "time": time_ms,
    }
