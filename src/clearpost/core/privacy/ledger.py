"""Report periods and the rules of the privacy-budget ledger.

A partner's periods form a chain: the first starts at 00:00 UTC on the day the partner was
registered, and each next one starts where the last released one ended and lasts the
agreement's ``report_cadence_days``. Each period's epsilon is spent exactly once, when its
report is released; storage enforces that with a unique constraint on (partner, period
start), and these rules refuse the obvious cases before any noise is drawn. Because a new
period always starts at the previous end, periods never overlap even if the cadence changes.

The agreement also caps the epsilon spent on periods that start in one calendar year (UTC).
A period that would go over is never released: the chain jumps to 1 January of the next
year, and the skipped time is simply not reported (``next_period_in_budget``). The default
yearly budget fits every period of the schedule, so only an agreement that asks for less,
or a change of epsilon or cadence within a year, makes the chain jump.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from clearpost.core.privacy.errors import (
    BudgetSpent,
    InvalidPeriod,
    PeriodNotNext,
    PeriodOpen,
    YearBudgetSpent,
)

DAY_MS = 86_400_000
_DATE_RE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclass(frozen=True, slots=True)
class Period:
    """``[start_ms, end_ms)``, both at 00:00 UTC."""

    start_ms: int
    end_ms: int

    @property
    def id(self) -> str:
        """ISO 8601 interval of dates, e.g. ``2026-01-05/2026-01-19`` (end exclusive)."""
        return f"{day(self.start_ms)}/{day(self.end_ms)}"

    def to_json(self) -> dict[str, int | str]:
        return {"id": self.id, "start": self.start_ms, "end": self.end_ms}


def day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def anchor(registered_at_ms: int) -> int:
    """00:00 UTC of the registration day: where a partner's first period starts."""
    return registered_at_ms - registered_at_ms % DAY_MS


def next_period(registered_at_ms: int, cadence_days: int, last_end_ms: int | None) -> Period:
    """The first period not yet released."""
    if cadence_days < 1:
        raise InvalidPeriod("a report cadence is at least one day")
    start = anchor(registered_at_ms) if last_end_ms is None else last_end_ms
    return Period(start, start + cadence_days * DAY_MS)


BUDGET_TOLERANCE = 1e-9
"""Sums of float epsilons may exceed a budget by rounding; this much relative is not over."""


def year_of(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).year


def year_start(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) * 1000


def spent_by_year(spent: list[tuple[int, float]]) -> dict[int, float]:
    """Ledger rows as (period start ms, epsilon) -> epsilon spent per calendar year."""
    out: dict[int, float] = {}
    for start, epsilon in spent:
        out[year_of(start)] = out.get(year_of(start), 0.0) + epsilon
    return out


def fits(epsilon: float, yearly: float, spent: float) -> bool:
    return spent + epsilon <= yearly * (1 + BUDGET_TOLERANCE)


def check_year_budget(
    period: Period, epsilon: float, yearly: float, spent: Mapping[int, float]
) -> None:
    """Raise ``YearBudgetSpent`` (with the numbers, for machines) unless releasing
    ``period`` at ``epsilon`` keeps its year within ``yearly``."""
    year = year_of(period.start_ms)
    used = spent.get(year, 0.0)
    if not fits(epsilon, yearly, used):
        raise YearBudgetSpent(
            f"releasing {period.id} at epsilon {epsilon:g} would spend {used + epsilon:g} on "
            f"periods starting in {year}, over the agreement's epsilon_per_year {yearly:g}",
            period=period.id,
            year=year,
            epsilon=epsilon,
            epsilon_per_year=yearly,
            spent=used,
            left=max(yearly - used, 0.0),
        )


def next_period_in_budget(
    registered_at_ms: int,
    cadence_days: int,
    last_end_ms: int | None,
    epsilon: float,
    yearly: float,
    spent: Mapping[int, float],
) -> Period:
    """The first period not yet released whose year still has ``epsilon`` left: the chain's
    next period, or the first one of a later year if its own year's budget is spent."""
    due = next_period(registered_at_ms, cadence_days, last_end_ms)
    for _ in range(100):  # a year without budget is skipped; no agreement skips a century
        year = year_of(due.start_ms)
        if fits(epsilon, yearly, spent.get(year, 0.0)):
            return due
        start = year_start(year + 1)
        due = Period(start, start + cadence_days * DAY_MS)
    raise InvalidPeriod("no year within a century has budget left for a period")


def _parse_day(text: str) -> int:
    if not _DATE_RE.match(text):
        raise InvalidPeriod(f"{text[:40]!r} is not a date (YYYY-MM-DD)")
    try:
        parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidPeriod(f"{text!r} is not a calendar date") from exc
    return int(parsed.timestamp()) * 1000


def parse_period(text: str) -> tuple[int, int | None]:
    """``YYYY-MM-DD`` (the start) or ``YYYY-MM-DD/YYYY-MM-DD`` -> (start ms, end ms or None)."""
    start, sep, end = text.strip().partition("/")
    start_ms = _parse_day(start)
    if not sep:
        return start_ms, None
    end_ms = _parse_day(end)
    if end_ms <= start_ms:
        raise InvalidPeriod("a period ends after it starts")
    return start_ms, end_ms


def choose_period(requested: str | None, due: Period, now_ms: int) -> Period:
    """Check an operator's request against the next unreleased period ``due``.

    Steps:
    1. A request names a start (and maybe an end); without one, ``due`` is meant.
    2. A start before ``due`` is inside a released period: its budget is spent.
    3. A start after ``due`` would skip a period: refused, periods go in order.
    4. An end that differs from the cadence's end is not this partner's period.
    5. The period must have ended.
    """
    if requested is not None:
        start, end = parse_period(requested)  # 1
        if start < due.start_ms:  # 2
            raise BudgetSpent(
                f"the report for the period starting {day(start)} was already released "
                "and its privacy budget spent; a period is released once",
                period=requested.strip(),
            )
        if start > due.start_ms:  # 3
            raise PeriodNotNext(
                f"periods are released in order; the next one is {due.id}", next_period=due.id
            )
        if end is not None and end != due.end_ms:  # 4
            raise InvalidPeriod(f"this partner's period starting {day(start)} is {due.id}")
    if now_ms < due.end_ms:  # 5
        raise PeriodOpen(
            f"the period {due.id} has not ended yet; it can be released from {day(due.end_ms)}",
            next_period=due.id,
        )
    return due
