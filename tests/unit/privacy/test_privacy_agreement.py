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
