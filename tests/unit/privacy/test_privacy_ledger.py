"""Periods and the ledger's rules: one release per period, in order, once it has ended,
within the agreement's yearly budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clearpost.core.partners.agreement import default_epsilon_per_year
from clearpost.core.privacy import (
    BudgetSpent,
    InvalidPeriod,
    Period,
    PeriodNotNext,
    PeriodOpen,
    YearBudgetSpent,
    check_year_budget,
    choose_period,
    next_period,
    next_period_in_budget,
    parse_period,
    spent_by_year,
    year_of,
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


def test_the_yearly_budget_skips_to_the_next_year_and_refuses_with_numbers() -> None:
    dec = int(datetime(2026, 12, 14, tzinfo=UTC).timestamp()) * 1000
    spent = spent_by_year([(JAN5, 10.0), (JAN5 + 14 * DAY_MS, 10.0), (dec, 1.0)])
    assert spent == {2026: 21.0}
    due = next_period_in_budget(REGISTERED, 14, JAN5 + 28 * DAY_MS, 10.0, 25.0, spent)
    assert due.id == "2027-01-01/2027-01-15"  # 2026 has 4 left, not 10
    assert next_period_in_budget(REGISTERED, 14, None, 1.0, 25.0, {}).id == "2026-01-05/2026-01-19"
    with pytest.raises(YearBudgetSpent) as refused:
        check_year_budget(Period(JAN5 + 28 * DAY_MS, JAN5 + 42 * DAY_MS), 10.0, 25.0, spent)
    assert refused.value.extra["left"] == 4.0 and refused.value.extra["year"] == 2026
    assert problem_for(refused.value).status_code == 409
    check_year_budget(Period(dec, dec + 14 * DAY_MS), 4.0, 25.0, spent)  # exactly the rest fits


def test_the_default_yearly_budget_fits_every_period_of_the_schedule() -> None:
    for cadence in (1, 7, 14, 30, 91, 366):
        yearly = default_epsilon_per_year(0.3, cadence)
        spent: dict[int, float] = {}
        last_end = None
        for _ in range(400 // cadence + 2):  # over a year of periods, none is skipped
            due = next_period_in_budget(REGISTERED, cadence, last_end, 0.3, yearly, spent)
            assert last_end is None or due.start_ms == last_end
            spent[year_of(due.start_ms)] = spent.get(year_of(due.start_ms), 0.0) + 0.3
            last_end = due.end_ms
