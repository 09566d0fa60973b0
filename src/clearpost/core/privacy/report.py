"""The report document: noisy counts with their intervals, the release rule, the privacy
parameters, the log entry.

A report is a JSON object, signed and hashed over its RFC 8785 canonical bytes. It says
what was counted, the contribution bounds, every measurement's sensitivity, epsilon, noise
scale, 95% margin and release threshold, so a reader can judge the numbers without asking.

Version 2 (Clearpost 0.2): every number is ``{"value", "low", "high"}`` (the 95% interval
of its noise around the noisy value), and each per-item cell is published on its own when
its noisy value reaches its measurement's threshold (``null`` otherwise); an item is listed
when at least one of its cells is. Version 1 had bare numbers and listed an item when its
noisy shares reached the agreement's ``suppression_threshold``.

A roll-up (also from Clearpost 0.2) is the same document over a longer window, released
from its own epsilon, with ``"kind": "rollup"``; its ``period`` is the window. Period
reports carry no ``kind``, so they read exactly as before.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clearpost.core.canonical import canonical_json
from clearpost.core.privacy.bounds import METRICS
from clearpost.core.privacy.ledger import Period
from clearpost.core.privacy.mechanism import (
    CONFIDENCE,
    RELEASE_ALPHA,
    MeasurementSpec,
    NoisyCounts,
    ReleasePlan,
)

REPORT_TYPE = "clearpost.partner-report"
REPORT_VERSION = 2
ROLLUP = "rollup"
"""``kind`` of a roll-up report and of its log entry; period reports have no ``kind``."""

UNIT = (
    "one user: the share intents made for them, the shares they sent, the recipients of "
    "those shares and the clicks on their share links"
)
BOUNDING = (
    "per user and metric, single shares count at most recipients_per_share recipients and "
    "single links at most clicks_per_share clicks; then the user's items, earliest first, "
    "spend a budget of sensitivity = items_per_user x per-item cap"
)


def number(value: int, margin: int) -> dict[str, int]:
    """A released number with its 95% interval."""
    return {"value": value, "low": value - margin, "high": value + margin}


def thresholds(plan: ReleasePlan, minimum: int) -> dict[str, int]:
    """Per metric, the noisy value a per-item cell must reach to be published: the noise
    threshold of its measurement, or the agreement's ``minimum`` if that is higher. Both
    are fixed before any data is read, so the rule is post-processing of noisy values."""
    return {
        spec.metric: max(spec.threshold or 0, minimum)
        for spec in plan.measurements
        if spec.name.startswith("items.")
    }


def publish(
    noisy: NoisyCounts, plan: ReleasePlan, minimum: int
) -> tuple[list[dict[str, Any]], int]:
    """Per-item rows (sorted by URL) with each cell that reaches its threshold and ``None``
    for the others; items with no such cell are left out and counted. Only noisy values
    are compared (post-processing)."""
    margins = _margins(plan, "items")
    limits = thresholds(plan, minimum)
    rows: list[dict[str, Any]] = []
    left_out = 0
    for url in sorted(noisy.items):
        counts = noisy.items[url]
        cells = {
            m: number(counts[m], margins[m]) if counts[m] >= limits[m] else None for m in METRICS
        }
        if all(c is None for c in cells.values()):
            left_out += 1
            continue
        rows.append({"url": url, **cells})
    return rows, left_out


def _margins(plan: ReleasePlan, kind: str) -> dict[str, int]:
    return {s.metric: s.margin for s in plan.measurements if s.name.startswith(kind + ".")}


def _measurement(spec: MeasurementSpec, limits: dict[str, int]) -> dict[str, Any]:
    out = spec.to_json()
    if spec.name.startswith("items."):
        out["threshold"] = limits[spec.metric]
    return out


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
    rollup: bool = False,
) -> dict[str, Any]:
    """The report object that is signed, hashed, logged and handed to the partner; with
    ``rollup`` a roll-up over the window ``period``."""
    rows, left_out = publish(noisy, plan, suppression_threshold)
    limits = thresholds(plan, suppression_threshold)
    margins = _margins(plan, "totals")
    return {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        **({"kind": ROLLUP} if rollup else {}),
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
            "bounding": BOUNDING,
            "totals_share": plan.totals_share,
            "measurements": [_measurement(m, limits) for m in plan.measurements],
            "intervals": {
                "confidence": CONFIDENCE,
                "rule": "low and high are the noisy value -/+ its measurement's margin95; "
                "the noise lies within the margin with probability 0.95",
            },
            "release": {
                "alpha": RELEASE_ALPHA,
                "minimum": suppression_threshold,
                "rule": "a per-item cell is published when its noisy value reaches its "
                "measurement's threshold, which a true count of 0 reaches with probability "
                "at most alpha (or the agreement's minimum, if higher); totals always",
            },
        },
        "totals": {m: number(noisy.totals[m], margins[m]) for m in METRICS},
        "items": rows,
        "suppressed_items": left_out,
    }


def report_bytes(report: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes that are signed and hashed."""
    return canonical_json(report)


def report_hash(report: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes: what the log's ``report`` entry records."""
    return hashlib.sha256(report_bytes(report)).hexdigest()


def report_entry(
    partner_id: str,
    period: str,
    report_hash_hex: str,
    epsilon: float,
    time_ms: int,
    *,
    rollup: bool = False,
) -> dict[str, Any]:
    """A report was released: appended to the log before the partner can fetch it. A
    roll-up's entry says ``"kind": "rollup"`` and ``period`` is its window."""
    return {
        "type": "report",
        **({"kind": ROLLUP} if rollup else {}),
        "partner": partner_id,
        "period": period,
        "report_hash": report_hash_hex,
        "epsilon": epsilon,
        "time": time_ms,
    }
