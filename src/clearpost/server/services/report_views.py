"""What the report service hands out: a released report as the partner sees it, and a
partner's privacy budget (periods and roll-ups) as its agreement states it and the ledger
spent it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from clearpost.core.privacy import Period
from clearpost.storage.sql.reports import PERIOD, ReportRow


@dataclass(frozen=True, slots=True)
class Released:
    """A report as the partner sees it: the signed object, and where it is in the log."""

    report_id: str
    partner_id: str
    period: Period
    report: dict[str, Any]
    body: str
    """The report's RFC 8785 bytes as text: exactly what is signed and hashed."""
    report_hash: str
    signature: str
    public_key: str
    log_index: int
    released_at: int
    kind: str = PERIOD
    """``period`` or ``rollup``."""

    @classmethod
    def from_row(cls, row: ReportRow) -> Released:
        return cls(
            row.report_id,
            row.partner_id,
            Period(row.period_start, row.period_end),
            orjson.loads(row.body),
            row.body,
            row.report_hash,
            row.signature,
            row.public_key,
            row.log_index,
            row.released_at,
            row.kind,
        )


@dataclass(frozen=True, slots=True)
class Rollup:
    """An agreement's roll-up: its window, its epsilon, and the next window not released."""

    days: int
    epsilon: float
    released: int
    next_window: Period

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "epsilon": self.epsilon,
            "released": self.released,
            "next_window": self.next_window.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Budget:
    """A partner's privacy budget as its agreement states it, and what the ledger spent."""

    epsilon_per_period: float
    epsilon_per_year: float
    year: int
    """The calendar year (UTC) the figures are for: the one the next period starts in."""
    spent_this_year: float
    periods_released: int
    spent_total: float
    next_period: Period
    epsilon_scheduled_per_year: float
    """What the agreed schedule (periods and roll-ups) can spend on windows starting in one
    year; what a user is exposed to per year is this, capped by ``epsilon_per_year``."""
    rollup: Rollup | None = None

    @property
    def exposure_per_year(self) -> float:
        return min(self.epsilon_scheduled_per_year, self.epsilon_per_year)

    @property
    def left_this_year(self) -> float:
        return max(round(self.epsilon_per_year - self.spent_this_year, 9), 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilon_per_period": self.epsilon_per_period,
            "epsilon_per_year": self.epsilon_per_year,
            "year": self.year,
            "spent_this_year": round(self.spent_this_year, 9),
            "left_this_year": self.left_this_year,
            "periods_released": self.periods_released,
            "spent_total": round(self.spent_total, 9),
            "next_period": self.next_period.to_json(),
            "epsilon_scheduled_per_year": self.epsilon_scheduled_per_year,
            "exposure_per_year": self.exposure_per_year,
            "rollup": None if self.rollup is None else self.rollup.to_json(),
        }
