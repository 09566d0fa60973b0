"""Roll-up reports end to end, on SQLite and PostgreSQL: released after their window closes
only for an agreement that asks for one, from their own epsilon, inside the year budget,
logged, and fetched by the partner (in process with a fake clock, and from a real server)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from clearpost.cli.main import app as cli_app
from clearpost.core.clock import FakeClock
from clearpost.core.errors import Conflict
from clearpost.core.privacy import BudgetSpent, PeriodOpen, YearBudgetSpent, report_entry
from clearpost.core.tlog.entries import decode_entry, encode_entry
from clearpost.server.http.app import create_app
from clearpost.server.http.errors import problem_for
from clearpost.server.services.container import Services
from clearpost.storage.sql.reports import ReportRow, ReportStore
from tests.integration.test_reports import (
    DAY,
    FILMCO,
    FIRST,
    GRACE,
    REGISTERED_MS,
    STREAMCO,
    A,
    Lab,
    fetch,
    lab_settings,
    prepare_past_partner,
    share,
)
from tests.support import api
from tests.support.server import start_server

ROLLUP = "rollup_days = 28\nrollup_epsilon = 5.0\n"
WINDOW = "2026-01-05/2026-02-02"  # two periods of 14 days
WINDOW_START_MS = 1_767_571_200_000
WINDOW_END_MS = WINDOW_START_MS + 28 * DAY * 1000


@pytest.fixture
async def lab(tmp_path: Path, db_url: str) -> AsyncIterator[Lab]:
    """StreamCo asks for a 28-day roll-up at epsilon 5; FilmCo asks for none."""
    clock = FakeClock(REGISTERED_MS)
    settings = lab_settings(tmp_path, db_url)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            svc: Services = app.state.services
            _, secret = await svc.partners.register(STREAMCO + ROLLUP)
            await svc.partners.register(FILMCO)
            yield Lab(client, svc, clock, settings, secret)


def to(lab: Lab, ms: int) -> None:
    lab.clock.advance((ms - lab.clock.now_ms()) / 1000)


async def log_entry(lab: Lab, index: int) -> dict[str, Any]:
    await lab.svc.log.wait_integrated(index)
    r = await lab.client.get("/v1/log/entries", params={"start": index, "end": index + 1})
    return dict(decode_entry(base64.b64decode(r.json()["entries"][0])))


async def test_a_roll_up_is_released_when_its_window_closes_only_if_asked(lab: Lab) -> None:
    viewers = [await api.register(lab.client, f"viewer{i}") for i in range(30)]
    for user in viewers:  # the first period
        await share(lab, user, A, recipients=5, clicks=3)
        await share(lab, user, "https://filmco.example/f/1", partner_id="filmco")
    to(lab, WINDOW_START_MS + 14 * DAY * 1000 + 1000)
    for user in viewers[:10]:  # the second: ten of the same users again
        await share(lab, user, A, recipients=5, clicks=3)

    to(lab, WINDOW_END_MS + (GRACE - 1) * 1000)
    await lab.svc.reports.next_pass()
    assert [r.kind for r in await lab.svc.reports.reports("streamco")] == ["period"]
    lab.clock.advance(2)
    await lab.svc.reports.next_pass()

    body = await fetch(lab)
    kinds = [(r["kind"], r["period"]) for r in body["reports"]]
    assert kinds == [
        ("rollup", WINDOW),  # newest window end first; the roll-up before its last period
        ("period", "2026-01-19/2026-02-02"),
        ("period", FIRST),
    ]
    item = body["reports"][0]
    report = item["report"]
    assert report["kind"] == "rollup" and report["period"]["id"] == WINDOW
    assert report["privacy"]["epsilon"] == 5.0
    assert report["privacy"]["opendp_epsilon"] <= 5.0
    # one user's budget covers the whole window (1 item x per-item caps): 30 users count
    # once each, not 40 times as the two periods' shares add up to
    true = {"intents": 30, "shares": 30, "recipients": 60, "clicks": 60}
    margins = {m["name"]: m["margin95"] for m in report["privacy"]["measurements"]}
    scales = {m["name"]: m["scale"] for m in report["privacy"]["measurements"]}
    assert scales["totals.shares"] == pytest.approx(1 / (5.0 / 8))  # its own epsilon
    for metric, value in true.items():  # ε = 5: scales 1.6 and 3.2, so within 30
        number = report["totals"][metric]
        assert abs(number["value"] - value) <= 30, (metric, number)
        plus = margins[f"totals.{metric}"]
        assert (number["low"], number["high"]) == (number["value"] - plus, number["value"] + plus)
    (row,) = report["items"]
    assert row["url"] == A and row["shares"] is not None

    assert await log_entry(lab, item["log_index"]) == {
        "type": "report",
        "kind": "rollup",
        "partner": "streamco",
        "period": WINDOW,
        "report_hash": item["report_hash"],
        "epsilon": 5.0,
        "time": item["released_at"],
    }
    ledger = await lab.svc.reports.ledger("streamco")
    assert sorted((r.kind, r.epsilon) for r in ledger) == [
        ("period", 10.0),
        ("period", 10.0),
        ("rollup", 5.0),
    ]
    budget = body["budget"]
    assert budget["spent_this_year"] == 25.0 and budget["periods_released"] == 2
    # 27 periods at 10 and 14 windows of 28 days at 5 can start in a year
    assert budget["epsilon_per_year"] == budget["exposure_per_year"] == 270.0 + 70.0
    assert budget["rollup"] == {
        "days": 28,
        "epsilon": 5.0,
        "released": 1,
        "next_window": {
            "id": "2026-02-02/2026-03-02",
            "start": WINDOW_END_MS,
            "end": WINDOW_END_MS + 28 * DAY * 1000,
        },
    }

    # FilmCo's agreement asks for no roll-up: periods only
    film = await lab.svc.reports.reports("filmco")
    assert [r.kind for r in film] == ["period", "period"]
    assert (await lab.svc.reports.budget("filmco")).rollup is None
    with pytest.raises(Conflict) as refused:
        await lab.svc.reports.release_rollup("filmco")
    assert refused.value.code == "rollup_not_agreed"

    # asking for a roll-up later does not reach back before the day it was asked for
    await lab.svc.partners.update(FILMCO + ROLLUP)
    budget_now = await lab.svc.reports.budget("filmco")
    assert budget_now.rollup is not None
    assert budget_now.rollup.next_window.id == "2026-02-02/2026-03-02"
    await lab.svc.reports.next_pass()
    assert [r.kind for r in await lab.svc.reports.reports("filmco")] == ["period", "period"]


async def test_roll_ups_spend_from_the_year_budget_and_are_released_once(lab: Lab) -> None:
    """Room for 22 a year: a period (10) and the roll-up (5) leave 7, so the second period
    (10) is refused with the numbers; a second release of the window is refused too."""
    await lab.svc.partners.update(STREAMCO + ROLLUP + "epsilon_per_year = 22.0\n")
    await share(lab, await api.register(lab.client, "alice"), A)
    to(lab, WINDOW_END_MS + 1000)
    first = await lab.svc.reports.release("streamco")
    rollup = await lab.svc.reports.release_rollup("streamco")
    assert (first.period.id, rollup.period.id, rollup.kind) == (FIRST, WINDOW, "rollup")
    with pytest.raises(YearBudgetSpent) as refused:
        await lab.svc.reports.release("streamco", "2026-01-19")
    assert refused.value.extra == {
        "period": "2026-01-19/2026-02-02",
        "year": 2026,
        "epsilon": 10.0,
        "epsilon_per_year": 22.0,
        "spent": 15.0,
        "left": 7.0,
    }
    problem = problem_for(refused.value)
    assert problem.status_code == 409
    assert json.loads(problem.body)["code"] == "year_budget_spent"

    # the scheduler: no period fits 2026 any more; the next roll-up (5) still does, later
    with pytest.raises(PeriodOpen):
        await lab.svc.reports.release_rollup("streamco")
    budget = await lab.svc.reports.budget("streamco")
    assert budget.next_period.id == "2027-01-01/2027-01-15"
    assert budget.rollup is not None and budget.rollup.next_window.id == "2026-02-02/2026-03-02"
    forged = ReportRow(
        "rp_forged",
        "streamco",
        rollup.period.start_ms,
        rollup.period.end_ms,
        "{}",
        "0" * 64,
        "sig",
        "key",
        0,
        lab.clock.now_ms(),
        "rollup",
    )
    entry = report_entry("streamco", WINDOW, "0" * 64, 5.0, lab.clock.now_ms(), rollup=True)
    with pytest.raises(BudgetSpent):  # the database holds one roll-up per window
        await ReportStore(lab.svc.db).release(forged, 5.0, encode_entry(entry))

    to(lab, WINDOW_END_MS + 28 * DAY * 1000 + GRACE * 1000 + 1000)
    await lab.svc.reports.next_pass()
    ledger = await lab.svc.reports.ledger("streamco")
    assert [(r.kind, r.epsilon) for r in ledger] == [
        ("period", 10.0),
        ("rollup", 5.0),
        ("rollup", 5.0),
    ]
    refused_again = await lab.svc.reports.budget("streamco")
    assert refused_again.spent_this_year == 0.0 and refused_again.year == 2027
    # 20 of 22 spent in 2026: a third roll-up would go over, so it waits for 2027
    assert refused_again.rollup is not None
    assert refused_again.rollup.next_window.id == "2027-01-01/2027-01-29"


@pytest.mark.slow
def test_a_real_server_releases_a_roll_up_and_the_partner_fetches_it(
    tmp_path: Path, db_url: str
) -> None:
    """``clearpost serve`` with a partner registered 40 days ago whose agreement asks for a
    28-day roll-up: it releases two periods and the roll-up on its own; the partner fetches
    it, finds its log entry, and ``clearpost partner reports --server`` shows it."""
    agreement = STREAMCO + ROLLUP
    secret = prepare_past_partner(tmp_path, db_url, days_ago=40, agreement=agreement)
    server = start_server(tmp_path / "data", db_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            token = httpx.post(
                server.url + "/oauth/token",
                data={"grant_type": "client_credentials", "scope": "reports:read"},
                auth=("streamco", secret),
            ).json()["access_token"]
            got = httpx.get(
                server.url + "/v1/partner/reports", headers={"Authorization": f"Bearer {token}"}
            ).json()
            if len(got["reports"]) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        kinds = sorted(r["kind"] for r in got["reports"])
        assert kinds == ["period", "period", "rollup"], server.log()
        (rolled,) = [r for r in got["reports"] if r["kind"] == "rollup"]
        report = rolled["report"]
        assert report["kind"] == "rollup" and report["privacy"]["epsilon"] == 5.0
        assert report["period"]["end"] - report["period"]["start"] == 28 * DAY * 1000
        assert all({"value", "low", "high"} <= set(n) for n in report["totals"].values())
        assert got["budget"]["rollup"]["released"] == 1

        index = rolled["log_index"]
        deadline = time.monotonic() + 20
        while True:  # the sequencer integrates it into a checkpoint shortly
            r = httpx.get(server.url + "/v1/log/entries", params={"start": index, "end": index + 1})
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        entry = decode_entry(base64.b64decode(r.json()["entries"][0]))
        assert entry["kind"] == "rollup" and entry["report_hash"] == rolled["report_hash"]
        assert entry["period"] == rolled["period"] == report["period"]["id"]

        shown = CliRunner().invoke(
            cli_app,
            ["partner", "reports", "--partner", "streamco", "--server", server.url],
            env={"CLEARPOST_CLIENT_SECRET": secret, "COLUMNS": "200"},
        )
        assert shown.exit_code == 0, shown.output
        assert "streamco: roll-ups" in shown.output and report["period"]["id"] in shown.output
        assert "per 28-day roll-up" in shown.output and "±" in shown.output
    finally:
        server.stop()
