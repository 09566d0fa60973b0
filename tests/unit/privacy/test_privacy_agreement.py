"""The agreement states everything that sets a report's noise; old logged ones still load."""

from __future__ import annotations

import pytest

from clearpost.core.errors import InvalidInput
from clearpost.core.partners.agreement import agreement_from_json, parse_agreement
from tests.support.partner import AGREEMENT


def test_a_new_agreement_states_the_bounds_and_the_yearly_budget() -> None:
    body = parse_agreement(AGREEMENT).to_json()
    assert body["max_items_per_user"] == 5 and body["max_recipients_per_share"] == 10
    assert body["epsilon_per_year"] == 27.0  # 27 periods of 14 days can start in a year
    assert body["report_totals_share"] == 0.5
    chosen = parse_agreement(
        AGREEMENT
        + "max_items_per_user = 2\nmax_recipients_per_share = 4\n"
        + "epsilon_per_year = 12.5\nreport_totals_share = 0.25\n"
    )
    assert (chosen.max_items_per_user, chosen.max_recipients_per_share) == (2, 4)
    assert chosen.yearly_budget == 12.5 and chosen.report_totals_share == 0.25


@pytest.mark.parametrize(
    "line",
    [
        "max_items_per_user = 0",
        "max_items_per_user = 2.5",
        "max_recipients_per_share = 1001",
        "epsilon_per_year = 0.5",  # less than one period
        "report_totals_share = 1.0",
        "report_totals_share = true",
    ],
)
def test_bad_report_fields_are_refused_by_name(line: str) -> None:
    with pytest.raises(InvalidInput, match=line.split(" ")[0]):
        parse_agreement(AGREEMENT + line + "\n")


def test_an_agreement_logged_before_the_new_fields_still_loads() -> None:
    body = parse_agreement(AGREEMENT).to_json()
    for key in ("max_items_per_user", "max_recipients_per_share", "epsilon_per_year"):
        del body[key]
    del body["report_totals_share"]
    old = agreement_from_json(body)
    assert old.max_items_per_user is None and old.max_recipients_per_share is None
    assert old.yearly_budget == 27.0 and old.report_totals_share == 0.5


ROLLUP = "rollup_days = 91\nrollup_epsilon = 2.0\n"


def test_a_roll_up_is_asked_for_with_its_own_budget_and_the_year_covers_it() -> None:
    agreement = parse_agreement(AGREEMENT + ROLLUP)
    assert (agreement.rollup_days, agreement.rollup_epsilon) == (91, 2.0)
    # 27 periods of 14 days and 5 windows of 91 days can start in one year
    assert agreement.yearly_budget == 27.0 + 5 * 2.0 == agreement.scheduled_per_year
    body = agreement.to_json()
    assert body["rollup_days"] == 91 and body["rollup_epsilon"] == 2.0
    assert agreement_from_json(body) == agreement
    capped = parse_agreement(AGREEMENT + ROLLUP + "epsilon_per_year = 20\n")
    assert capped.yearly_budget == 20.0 and capped.scheduled_per_year == 37.0


def test_without_a_roll_up_the_agreement_reads_as_before() -> None:
    """No roll-up fields in the published form, and one logged without the fields asks for none."""
    agreement = parse_agreement(AGREEMENT)
    assert agreement.rollup_days is None and agreement.rollup_epsilon is None
    body = agreement.to_json()
    assert "rollup_days" not in body and "rollup_epsilon" not in body
    assert agreement_from_json(body).rollup_days is None
    assert agreement.scheduled_per_year == 27.0


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        ("rollup_days = 91\n", "both"),  # no epsilon of its own
        ("rollup_epsilon = 1.0\n", "both"),
        ("rollup_days = 14\nrollup_epsilon = 1.0\n", "rollup_days"),  # not longer than a period
        ("rollup_days = 367\nrollup_epsilon = 1.0\n", "rollup_days"),
        ("rollup_days = 91\nrollup_epsilon = 0\n", "rollup_epsilon"),
        ("rollup_days = 91\nrollup_epsilon = 3.0\nepsilon_per_year = 2.5\n", "epsilon_per_year"),
    ],
)
def test_bad_roll_up_fields_are_refused_by_name(lines: str, named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        parse_agreement(AGREEMENT + lines)
