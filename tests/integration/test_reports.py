"""Partner reports end to end, on SQLite and PostgreSQL: the scheduler with a fake clock,
bounds on what the database holds, the ledger's one release per period (also between two
releasers), the signed report and its log entry, and that partners see only their own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from clearpost.cli.main import app as cli_app
from clearpost.core.clock import FakeClock, SystemClock
from clearpost.core.errors import Conflict
from clearpost.core.partners.agreement import agreement_from_json
from clearpost.core.privacy import (
    METRICS,
    Bounds,
    BudgetSpent,
    PeriodNotNext,
    PeriodOpen,
    YearBudgetSpent,
    contributions,
    report_entry,
)
from clearpost.core.tlog.entries import decode_entry, encode_entry
from clearpost.server.config import Settings
from clearpost.server.http.app import create_app
from clearpost.server.services.authorize import PartnerAccess
from clearpost.server.services.container import Services
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.reports import ReportService, load_report_key
from clearpost.storage.db import Database
from clearpost.storage.sql.partners import PartnerStore
from clearpost.storage.sql.reports import ReportRow, ReportStore
from clearpost.storage.sql.secrets import SecretStore
from tests.conftest import fast_settings
from tests.support import api, partner
from tests.support.partner import REDIRECT
from tests.support.server import start_server

DAY = 86_400
REGISTERED_MS = 1_767_614_400_000  # 2026-01-05 12:00 UTC
FIRST = "2026-01-05/2026-01-19"
FIRST_END_MS = 1_767_571_200_000 + 14 * DAY * 1000
GRACE = 600
A, B, C = (f"https://streamco.example/title/{n}" for n in ("a", "b", "c"))

STREAMCO = partner.AGREEMENT.replace(
    "epsilon_per_period = 1.0",
    "epsilon_per_period = 10.0\nsuppression_threshold = 10\nmax_clicks_per_share = 2\n"
    "max_items_per_user = 1\nmax_recipients_per_share = 2",
)
FILMCO = (
    STREAMCO.replace('id = "streamco"', 'id = "filmco"')
    .replace('name = "StreamCo"', 'name = "FilmCo"')
    .replace("streamco.example", "filmco.example")
)
REPORT_KEYS = {
    "type",
    "version",
    "partner",
    "agreement_version",
    "period",
    "released_at",
    "signing_key",
    "privacy",
    "totals",
    "items",
    "suppressed_items",
}


@dataclass
class Lab:
    client: httpx.AsyncClient
    svc: Services
    clock: FakeClock
    settings: Settings
    secret: str


def lab_settings(tmp_path: Path, db_url: str | None) -> Settings:
    return fast_settings(
        tmp_path,
        database=db_url,
        click_rate_per_minute=0.0,
        report_max_items_per_user=1,
        report_max_recipients_per_share=2,
        report_grace_seconds=GRACE,
        report_check_seconds=3600.0,
    )


@pytest.fixture
async def lab(tmp_path: Path, db_url: str) -> AsyncIterator[Lab]:
    clock = FakeClock(REGISTERED_MS)
    settings = lab_settings(tmp_path, db_url)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            svc: Services = app.state.services
            _, secret = await svc.partners.register(STREAMCO)
            yield Lab(client, svc, clock, settings, secret)


async def share(
    lab: Lab,
    user_id: str,
    url: str,
    *,
    recipients: int | None = 2,
    clicks: int = 0,
    partner_id: str = "streamco",
) -> str:
    """The partner suggests ``url`` to the user, who sends it; ``clicks`` follow the link."""
    access = PartnerAccess(partner_id, user_id, None, frozenset({"share:intent"}))
    created = await lab.svc.shares.create_intent(access, "Night Train", url, None, None)
    (link,) = [
        link
        for intent, link in await lab.svc.shares.pending(user_id)
        if intent.intent_id == created.intent_id
    ]
    token = link.rsplit("/s/", 1)[1]
    if recipients is not None:
        await lab.svc.shares.complete(user_id, created.intent_id, recipients)
    for _ in range(clicks):
        r = await lab.client.get(f"/s/{token}")
        assert r.status_code == 302
    lab.clock.advance(1)  # events in a user's order
    return token


async def partner_token(client: httpx.AsyncClient, partner_id: str, secret: str) -> str:
    r = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        auth=(partner_id, secret),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def fetch(lab: Lab, partner_id: str = "streamco", secret: str | None = None) -> Any:
    token = await partner_token(lab.client, partner_id, secret or lab.secret)
    r = await lab.client.get("/v1/partner/reports", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def to_end_of_first_period(lab: Lab, extra_seconds: float = GRACE) -> None:
    lab.clock.advance((FIRST_END_MS - lab.clock.now_ms()) / 1000 + extra_seconds)


async def test_a_closed_period_is_released_on_schedule_signed_and_logged(lab: Lab) -> None:
    viewers = [await api.register(lab.client, f"viewer{i}") for i in range(30)]
    for user in viewers:
        await share(lab, user, A, recipients=5, clicks=3)
    await share(lab, viewers[0], B, recipients=1)  # a second item: over the one-item bound
    await share(lab, viewers[1], B, recipients=None)

    to_end_of_first_period(lab, GRACE - 1)
    await lab.svc.reports.next_pass()
    assert (await fetch(lab))["reports"] == []  # the grace time is not over
    lab.clock.advance(2)
    await lab.svc.reports.next_pass()
    body = await fetch(lab)
    (item,) = body["reports"]
    report = item["report"]

    # the signature: Ed25519 by the published key over the RFC 8785 bytes
    public_key = body["signing_key"]["public_key"]
    assert item["public_key"] == public_key == report["signing_key"]["public_key"]
    canonical = rfc8785.dumps(report)
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(
        base64.b64decode(item["signature"]), canonical
    )
    assert hashlib.sha256(canonical).hexdigest() == item["report_hash"]

    # the log entry, in a signed checkpoint, names the partner, period, hash and epsilon
    index = item["log_index"]
    await lab.svc.log.wait_integrated(index)
    r = await lab.client.get("/v1/log/entries", params={"start": index, "end": index + 1})
    entry = decode_entry(base64.b64decode(r.json()["entries"][0]))
    assert entry == {
        "type": "report",
        "partner": "streamco",
        "period": FIRST,
        "report_hash": item["report_hash"],
        "epsilon": 10.0,
        "time": item["released_at"],
    }

    # what it says: bounded, noisy, with intervals, small cells left out, nothing else
    assert set(report) == REPORT_KEYS and item["period"] == report["period"]["id"] == FIRST
    assert report["version"] == 2
    assert report["privacy"]["bounds"] == {
        "items_per_user": 1,
        "shares_per_item": 1,
        "clicks_per_share": 2,
        "recipients_per_share": 2,
    }
    assert report["privacy"]["epsilon"] == 10.0
    release_rule = report["privacy"]["release"]
    assert release_rule["minimum"] == 10 and release_rule["alpha"] == 0.005
    margins = {m["name"]: m["margin95"] for m in report["privacy"]["measurements"]}
    (row,) = report["items"]
    assert row["url"] == A and set(row) == {"url", *METRICS}
    assert report["suppressed_items"] == 1  # B: past every user's budget, so about 0
    true = {"intents": 30, "shares": 30, "recipients": 60, "clicks": 60}  # after the bounds
    for metric, value in true.items():  # ε = 10: scales 0.8 to 1.6, so within 20
        for kind, number in (("items", row[metric]), ("totals", report["totals"][metric])):
            assert abs(number["value"] - value) <= 20, (metric, number)
            plus = margins[f"{kind}.{metric}"]
            assert (number["low"], number["high"]) == (
                number["value"] - plus,
                number["value"] + plus,
            )
    assert body["budget"] == {  # 27 periods of 14 days can start in a year
        "epsilon_per_period": 10.0,
        "epsilon_per_year": 270.0,
        "year": 2026,
        "spent_this_year": 10.0,
        "left_this_year": 260.0,
        "periods_released": 1,
        "spent_total": 10.0,
        "next_period": {
            "id": "2026-01-19/2026-02-02",
            "start": FIRST_END_MS,
            "end": FIRST_END_MS + 14 * DAY * 1000,
        },
        "epsilon_scheduled_per_year": 270.0,
        "exposure_per_year": 270.0,
        "rollup": None,  # the agreement asks for none
    }
    assert item["kind"] == "period" and "kind" not in report


async def test_what_the_database_holds_is_bounded_per_user(lab: Lab) -> None:
    alice = await api.register(lab.client, "alice")
    bob = await api.register(lab.client, "bob")
    first_link = await share(lab, alice, A, recipients=100)
    for _ in range(4):
        await share(lab, alice, A, recipients=100, clicks=1)
    for _ in range(7):
        assert (await lab.client.get(f"/s/{first_link}")).status_code == 302
    await share(lab, alice, B, recipients=5, clicks=3)  # her second item
    # bob shares through the real partner API, with his consent
    await share_over_http(lab, "bob", A)
    to_end_of_first_period(lab, 0)
    await share(lab, bob, C, clicks=1)  # the next period: not in this one

    period = await lab.svc.reports.next_period("streamco")
    assert period.id == FIRST
    store = ReportStore(lab.svc.db)
    activity = await store.activity("streamco", period.start_ms, period.end_ms)
    assert activity.keys == (A, B)  # C's link was made after the period
    assert len(activity.intents) == 7 and len(activity.shares) == 7
    assert sorted({c.user_id for c in activity.clicks}) == [alice, bob]  # the sharers
    assert len([c for c in activity.clicks if c.user_id == alice]) == 4 + 7 + 3

    agreement, _ = await lab.svc.partners.agreement("streamco")
    bounds = Bounds(1, agreement.max_shares_per_item, agreement.max_clicks_per_share, 2)
    records = dict(zip(sorted([alice, bob]), contributions(activity, bounds).users, strict=True))
    # her budget per metric: 1 item x per-item cap, spent on her first item, A
    assert records[alice].intents == ((A, 1),)  # 5 intents on A, 1 on B: 1
    assert records[alice].shares == ((A, 1),)
    assert records[alice].recipients == ((A, 2),)  # 5 shares x 100 recipients count as 2
    assert records[alice].clicks == ((A, 2),)  # 7 + 4 clicks on A's links count as 2
    assert records[bob].shares == ((A, 1),) and records[bob].clicks == ((A, 1),)


async def share_over_http(lab: Lab, username: str, url: str) -> None:
    """Consent with authlib's client, a share intent by the partner, the user sends it, and
    somebody clicks the link."""
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    transport = lab.client._transport
    async with AsyncOAuth2Client(
        client_id="streamco",
        client_secret=lab.secret,
        redirect_uri=REDIRECT,
        scope="share:intent",
        code_challenge_method="S256",
        transport=transport,
        base_url="http://test",
    ) as oauth:
        verifier = generate_token(48)
        url_, _ = oauth.create_authorization_url(
            "http://test/oauth/authorize", code_verifier=verifier
        )
        done = await partner.approve(lab.client, url_, username, api.PASSWORD)
        code = partner.code_from(done)["code"][0]
        await oauth.fetch_token("http://test/oauth/token", code=code, code_verifier=verifier)
        r = await oauth.post(
            "http://test/v1/partner/share-intents", json={"title": "Night Train", "url": url}
        )
        assert r.status_code == 201, r.text
        intent_id = r.json()["intent_id"]
    device = await api.login(lab.client, username, keys=False)
    pending = (await lab.client.get("/v1/me/share-intents", headers=device.headers)).json()
    (mine,) = [i for i in pending["share_intents"] if i["intent_id"] == intent_id]
    r = await lab.client.post(
        f"/v1/me/share-intents/{intent_id}/complete",
        json={"recipients": 3},
        headers=device.headers,
    )
    assert r.status_code == 204, r.text
    assert (
        await lab.client.get(mine["link"].replace("http://127.0.0.1:8448", ""))
    ).status_code == 302
    lab.clock.advance(1)


async def test_a_period_is_released_once(lab: Lab) -> None:
    user = await api.register(lab.client, "alice")
    await share(lab, user, A, clicks=1)
    with pytest.raises(PeriodOpen):
        await lab.svc.reports.release("streamco")
    to_end_of_first_period(lab, 1)  # an operator need not wait for the grace time
    released = await lab.svc.reports.release("streamco", "2026-01-05")
    assert released.period.id == FIRST

    with pytest.raises(BudgetSpent):  # the service refuses
        await lab.svc.reports.release("streamco", "2026-01-05")
    with pytest.raises(PeriodNotNext):
        await lab.svc.reports.release("streamco", "2026-02-02")
    forged = ReportRow(
        "rp_forged",
        "streamco",
        released.period.start_ms,
        released.period.end_ms,
        "{}",
        "0" * 64,
        "sig",
        "key",
        0,
        lab.clock.now_ms(),
    )
    entry = encode_entry(report_entry("streamco", FIRST, "0" * 64, 10.0, lab.clock.now_ms()))
    with pytest.raises(BudgetSpent):  # and so does the database, past the service's checks
        await ReportStore(lab.svc.db).release(forged, 10.0, entry)

    await lab.svc.reports.next_pass()  # nothing else is due
    (spent,) = await lab.svc.reports.ledger("streamco")
    assert (spent.period_start, spent.epsilon, spent.report_id) == (
        released.period.start_ms,
        10.0,
        released.report_id,
    )
    assert [r.report_id for r in await lab.svc.reports.reports("streamco")] == [released.report_id]
    assert await report_entries(lab) == 1  # the forged release left nothing in the log


async def test_a_period_over_the_yearly_budget_is_refused_and_skipped(lab: Lab) -> None:
    """An agreement with room for two periods a year: the third is refused with the numbers
    a machine needs, and the chain goes on in January of the next year."""
    await lab.svc.partners.update(
        STREAMCO.replace(
            "epsilon_per_period = 10.0", "epsilon_per_period = 10.0\nepsilon_per_year = 25.0"
        )
    )
    user = await api.register(lab.client, "alice")
    await share(lab, user, A)
    lab.clock.advance(3 * 14 * DAY + 1000)
    first = await lab.svc.reports.release("streamco")
    second = await lab.svc.reports.release("streamco")
    assert [first.period.id, second.period.id] == [FIRST, "2026-01-19/2026-02-02"]
    with pytest.raises(YearBudgetSpent) as refused:
        await lab.svc.reports.release("streamco", "2026-02-02")
    assert refused.value.code == "year_budget_spent"
    assert refused.value.extra == {
        "period": "2026-02-02/2026-02-16",
        "year": 2026,
        "epsilon": 10.0,
        "epsilon_per_year": 25.0,
        "spent": 20.0,
        "left": 5.0,
    }
    budget = await lab.svc.reports.budget("streamco")
    assert budget.next_period.id == "2027-01-01/2027-01-15"  # the rest of 2026 is not reported
    assert budget.year == 2027 and budget.spent_this_year == 0.0
    await lab.svc.reports.next_pass()  # the scheduler neither releases nor fails
    assert len(await lab.svc.reports.ledger("streamco")) == 2

    # over HTTP: the partner sees its budget; the refusal is a 409 problem
    body = await fetch(lab)
    assert body["budget"]["epsilon_per_year"] == 25.0 and body["budget"]["year"] == 2027
    from clearpost.server.http.errors import problem_for

    problem = problem_for(refused.value)
    assert problem.status_code == 409
    assert json.loads(problem.body)["left"] == 5.0


async def test_agreements_logged_before_the_bounds_were_stated_use_the_settings(
    lab: Lab,
) -> None:
    """A body logged by an earlier version lacks the new fields: it still parses, the
    server settings give its bounds and the yearly budget fits its schedule."""
    agreement, _ = await lab.svc.partners.agreement("streamco")
    body = agreement.to_json()
    for key in (
        "max_items_per_user",
        "max_recipients_per_share",
        "epsilon_per_year",
        "report_totals_share",
    ):
        del body[key]
    old = agreement_from_json(body)
    settings = lab_settings(Path("/nonexistent"), None)
    assert lab.svc.reports.bounds(old) == Bounds(
        settings.report_max_items_per_user, 1, 2, settings.report_max_recipients_per_share
    )
    assert old.yearly_budget == 270.0 and old.report_totals_share == 0.5
    assert lab.svc.reports.bounds(agreement) == Bounds(1, 1, 2, 2)


async def report_entries(lab: Lab) -> int:
    size = await lab.svc.log.store.next_index()
    bodies = await lab.svc.log.store.entries(0, size)
    return sum(1 for b in bodies if json.loads(b)["type"] == "report")


async def test_two_releasers_release_a_period_once(lab: Lab) -> None:
    """Two server processes' schedulers on one database: the ledger lets one commit."""
    user = await api.register(lab.client, "alice")
    await share(lab, user, A)
    to_end_of_first_period(lab)
    db2 = Database(lab.settings.database_url())
    try:
        other = ReportService.from_settings(
            lab.settings,
            db2,
            PartnerService(PartnerStore(db2), SecretStore(db2), lab.clock),
            load_report_key(lab.settings.report_key_path()),
            lab.clock,
        )
        mine, theirs = await asyncio.gather(lab.svc.reports.release_due(), other.release_due())
    finally:
        await db2.close()
    assert len(mine) + len(theirs) == 1
    assert len(await lab.svc.reports.ledger("streamco")) == 1
    assert len(await lab.svc.reports.reports("streamco")) == 1
    assert await report_entries(lab) == 1


async def test_after_an_outage_the_scheduler_catches_up_in_order(lab: Lab) -> None:
    no_reports = (
        FILMCO.replace('"profile:basic", "share:intent", "reports:read"', '"share:intent"')
        .replace('id = "filmco"', 'id = "quietco"')
        .replace('name = "FilmCo"', 'name = "QuietCo"')
    )
    await lab.svc.partners.register(no_reports)
    user = await api.register(lab.client, "alice")
    await share(lab, user, A)
    lab.clock.advance(3 * 14 * DAY + 1000)  # three periods end while nobody looks
    await lab.svc.reports.next_pass()
    released = sorted(await lab.svc.reports.reports("streamco"), key=lambda r: r.period.start_ms)
    assert [r.period.id for r in released] == [
        FIRST,
        "2026-01-19/2026-02-02",
        "2026-02-02/2026-02-16",
    ]
    assert [r.log_index for r in released] == sorted(r.log_index for r in released)
    assert await lab.svc.reports.reports("quietco") == []
    with pytest.raises(Conflict) as refused:
        await lab.svc.reports.release("quietco")
    assert refused.value.code == "reports_not_agreed"


async def test_a_partner_sees_only_its_own_reports(lab: Lab) -> None:
    _, film_secret = await lab.svc.partners.register(FILMCO)
    user = await api.register(lab.client, "alice")
    await share(lab, user, A, clicks=1)
    await share(lab, user, "https://filmco.example/f/1", partner_id="filmco")
    to_end_of_first_period(lab)
    await lab.svc.reports.next_pass()

    stream, film = await fetch(lab), await fetch(lab, "filmco", film_secret)
    assert stream["partner_id"] == "streamco" and film["partner_id"] == "filmco"
    assert [r["report"]["partner"] for r in stream["reports"]] == ["streamco"]
    assert [r["report"]["partner"] for r in film["reports"]] == ["filmco"]
    assert stream["reports"][0]["report_id"] != film["reports"][0]["report_id"]
    film_urls = json.dumps(film)
    assert "streamco.example" not in film_urls  # not even an item name leaks across

    # only a client-credentials token with reports:read opens the list
    token = await partner_token(lab.client, "streamco", lab.secret)
    r = await lab.client.get(
        "/v1/partner/reports", params={"limit": 0}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"
    r = await lab.client.get("/v1/partner/reports", headers={"Authorization": "Bearer cpo_nope"})
    assert r.status_code == 401


# --- the command line, on SQLite ---


def prepare_past_partner(
    tmp_path: Path, database: str | None, days_ago: int = 20, agreement: str = STREAMCO
) -> str:
    """A StreamCo registered ``days_ago`` days ago (real time) with some activity; returns
    its client secret."""
    clock = FakeClock(SystemClock().now_ms() - days_ago * DAY * 1000)
    settings = lab_settings(tmp_path, database)

    async def run() -> str:
        app = create_app(settings, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                svc: Services = app.state.services
                _, secret = await svc.partners.register(agreement)
                lab = Lab(client, svc, clock, settings, secret)
                for i in range(12):
                    await share(lab, await api.register(client, f"viewer{i}"), A, clicks=1)
                return secret

    return asyncio.run(run())


def test_cli_releases_by_hand_refuses_a_second_time_and_draws_the_chart(
    tmp_path: Path,
) -> None:
    prepare_past_partner(tmp_path, None)
    data = str(tmp_path / "data")
    runner = CliRunner()
    done = runner.invoke(
        cli_app, ["reports", "release", "--partner", "streamco", "--data-dir", data]
    )
    assert done.exit_code == 0, done.output
    assert "released streamco" in done.output and "verified" in done.output
    start = done.output.split("released streamco ")[1][:10]

    again = runner.invoke(
        cli_app,
        ["reports", "release", "--partner", "streamco", "--period", start, "--data-dir", data],
    )
    assert again.exit_code == 3 and "budget_spent" in again.output, again.output
    early = runner.invoke(
        cli_app, ["reports", "release", "--partner", "streamco", "--data-dir", data]
    )
    assert early.exit_code == 3 and "period_open" in early.output, early.output

    chart = tmp_path / "report.png"
    shown = runner.invoke(
        cli_app,
        ["reports", "show", "--partner", "streamco", "--data-dir", data, "--chart", str(chart)],
    )
    assert shown.exit_code == 0, shown.output
    assert "verified" in shown.output and start in shown.output
    assert "±" in shown.output and "95% interval" in shown.output
    assert "privacy budget: ε 10 per period, 270 per year;" in shown.output
    assert "spent 10, left 260" in shown.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = runner.invoke(
        cli_app, ["reports", "show", "--partner", "streamco", "--data-dir", data, "--json"]
    )
    (listed,) = json.loads(as_json.output)
    assert listed["verified"] is True and listed["partner"] == "streamco"
    unknown = runner.invoke(cli_app, ["reports", "show", "--partner", "nobody", "--data-dir", data])
    assert unknown.exit_code == 1 and "partner_not_found" in unknown.output


def test_a_real_server_releases_at_start_and_the_partner_verifies(
    tmp_path: Path, db_url: str
) -> None:
    """``clearpost serve`` releases the overdue period on its own; ``reports show --server``
    fetches it with client credentials and verifies signature and hash."""
    secret = prepare_past_partner(tmp_path, db_url)
    server = start_server(tmp_path / "data", db_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            token = httpx.post(
                server.url + "/oauth/token",
                data={"grant_type": "client_credentials", "scope": "reports:read"},
                auth=("streamco", secret),
            ).json()["access_token"]
            got = httpx.get(
                server.url + "/v1/partner/reports", headers={"Authorization": f"Bearer {token}"}
            ).json()
            if got["reports"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(got["reports"]) == 1, server.log()
        chart = tmp_path / "partner.png"
        shown = CliRunner().invoke(
            cli_app,
            [
                "reports",
                "show",
                "--partner",
                "streamco",
                "--server",
                server.url,
                "--chart",
                str(chart),
            ],
            env={"CLEARPOST_CLIENT_SECRET": secret},
        )
        assert shown.exit_code == 0, shown.output
        assert "verified" in shown.output and chart.stat().st_size > 1000
        wrong = CliRunner().invoke(
            cli_app,
            ["reports", "show", "--partner", "streamco", "--server", server.url],
            env={"CLEARPOST_CLIENT_SECRET": "cps_wrong"},
        )
        assert wrong.exit_code == 1 and "token_refused" in wrong.output
    finally:
        server.stop()
