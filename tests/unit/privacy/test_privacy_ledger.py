"""Periods and the ledger's rules: one release per period, in order, once it has ended."""

from __future__ import annotations

import pytest

from clearpost.core.privacy import (
    BudgetSpent,
    InvalidPeriod,
    Period,
    PeriodNotNext,
    PeriodOpen,
    choose_period,
    next_period,
    parse_period,
)
from clearpost.core.privacy.ledger import DAY_MS
from clearpost.server.http.errors import problem_for

REGISTERED = 1_767_614_400_000  # 2026-01-05 12:00 UTC
JAN5 = 1_767_571_200_000


def test_periods_start_at_midnight_of_registration_and_chain() -> None:
    first = next_period(REGISTERED, 14, None)
    assert first == Period(JAN5, JAN5 + 14 * DAY_MS)
    assert first.id == "2026-01-05/2026-01-19"
    second = next_period(REGISTERED, 7, first.end_ms)  # a new cadence starts at the last end
    assert second.id == "2026-01-19/2026-01-26"


def test_parse_period() -> None:
    assert parse_period("2026-01-05") == (JAN5, None)
    assert parse_period(" 2026-01-05/2026-01-19 ") == (JAN5, JAN5 + 14 * DAY_MS)
    for bad in ("2026-1-5", "2026-02-30", "yesterday", "2026-01-19/2026-01-05", "2026-01-05/"):
        with pytest.raises(InvalidPeriod):
            parse_period(bad)


def test_choose_period() -> None:
    due = next_period(REGISTERED, 14, JAN5 + 14 * DAY_MS)  # the first one was released
    after = due.end_ms
    assert choose_period(None, due, after) == due
    assert choose_period("2026-01-19", due, after) == due
    assert choose_period("2026-01-19/2026-02-02", due, after) == due
    with pytest.raises(BudgetSpent) as spent:
        choose_period("2026-01-05", due, after)
    with pytest.raises(BudgetSpent):
        choose_period("2026-01-12", due, after)  # inside the released period
    with pytest.raises(PeriodNotNext):
        choose_period("2026-02-02", due, after + 14 * DAY_MS)
    with pytest.raises(InvalidPeriod):
        choose_period("2026-01-19/2026-01-26", due, after)
    with pytest.raises(PeriodOpen):
        choose_period(None, due, after - 1)
    response = problem_for(spent.value)
    assert response.status_code == 409
    assert b'"code":"budget_spent"' in response.body


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PeriodOpen("x"), 409),
        (PeriodNotNext("x"), 409),
        (InvalidPeriod("x"), 422),
    ],
)
def test_ledger_errors_map_to_http(error: Exception, status: int) -> None:
    assert problem_for(error).status_code == status  # type: ignore[arg-type]
