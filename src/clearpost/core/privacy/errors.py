"""Domain errors of partner reports. They carry no HTTP status; ``server.http.errors`` maps
the conflicts to 409 and ``invalid_period`` to 422."""

from __future__ import annotations

from clearpost.core.errors import Conflict, InvalidInput


class BudgetSpent(Conflict):
    """The partner's privacy budget for that period was already spent on a released report."""

    code = "budget_spent"


class PeriodOpen(Conflict):
    """The period has not ended yet, so its report cannot be released."""

    code = "period_open"


class PeriodNotNext(Conflict):
    """Periods are released in order; this one is not the next unreleased period."""

    code = "period_not_next"


class InvalidPeriod(InvalidInput):
    """A period that does not parse as ``YYYY-MM-DD`` or ``YYYY-MM-DD/YYYY-MM-DD``."""

    code = "invalid_period"


class YearBudgetSpent(Conflict):
    """Releasing the period would take the epsilon spent on periods starting in its calendar
    year over the agreement's ``epsilon_per_year``."""

    code = "year_budget_spent"
