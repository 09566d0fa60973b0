"""``clearpost reports``: release a partner's report by hand; show released reports.

``release`` and ``show`` work on the server's database (``--database``/``--data-dir``/
``--config``, like ``serve``). ``show --server URL`` instead fetches the reports as the
partner does (client credentials, ``reports:read``) and verifies every signature and hash.

Exit codes: 0 done, 1 error, 2 usage or configuration, 3 refused (``budget_spent``,
``period_open``, ``period_not_next``, ...), 4 a report failed verification.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from clearpost.cli.errors import EXIT_FAILED, EXIT_REFUSED, EXIT_UNVERIFIED, fail
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from
from clearpost.core.canonical import canonical_json
from clearpost.core.clock import SystemClock
from clearpost.core.errors import ClearpostError, Conflict, SignatureInvalid
from clearpost.core.privacy import METRICS, verify_report
from clearpost.core.privacy.ledger import DAY_MS
from clearpost.core.privacy.mechanism import margin
from clearpost.server.config import Settings
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.report_views import Released
from clearpost.server.services.reports import ReportService, load_report_key
from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.partners import PartnerStore
from clearpost.storage.sql.secrets import SecretStore

app = typer.Typer(
    help="Partner reports: release a period by hand, show released reports.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

EXIT_ERROR = EXIT_FAILED  # 2: usage/configuration

PartnerOpt = Annotated[str, typer.Option("--partner", help="The partner's id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[ReportService]:
    """The report service on the server's database, signing with the server's report key."""
    signer = load_report_key(settings.report_key_path())  # never create one here
    db = Database(settings.database_url())
    try:
        await upgrade(db)
        clock = SystemClock()
        partners = PartnerService(PartnerStore(db), SecretStore(db), clock)
        yield ReportService.from_settings(settings, db, partners, signer, clock)
    finally:
        await db.close()


def _fail(exc: ClearpostError) -> typer.Exit:
    return fail(
        exc.message, EXIT_REFUSED if isinstance(exc, Conflict) else EXIT_ERROR, code=exc.code
    )


@app.command("release")
def release_command(
    partner: PartnerOpt,
    period: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--period",
            help="The period's start date YYYY-MM-DD (or START/END); default: the next closed one.",
        ),
    ] = None,
    rollup: Annotated[
        bool,
        typer.Option(
            "--rollup", help="Release the next closed roll-up window instead of a period."
        ),
    ] = False,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a closed period's report (or, with --rollup, roll-up) now. Each is released
    once: the budget is spent, the report is logged and signed; a second release is refused
    (budget_spent)."""
    settings = settings_from(config, database=database, data_dir=data_dir)
    if rollup and period is not None:
        raise typer.BadParameter(
            "a roll-up is always the next closed window", param_hint="--period"
        )

    async def run() -> Released:
        async with _service(settings) as reports:
            if rollup:
                return await reports.release_rollup(partner)
            return await reports.release(partner, period)

    try:
        released = asyncio.run(run())
    except ClearpostError as exc:
        raise _fail(exc) from exc
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "report_id": released.report_id,
                    "kind": released.kind,
                    "period": released.period.id,
                    "log_index": released.log_index,
                    "report_hash": released.report_hash,
                    "report": released.report,
                }
            )
        )
        return
    out.print(
        f"released {partner} {released.period.id}: log index {released.log_index}, "
        f"report hash {released.report_hash}"
    )
    _table(partner, [_Shown(released.report, released.log_index, True)], None)


@dataclass(frozen=True, slots=True)
class _Shown:
    report: dict[str, Any]
    log_index: int
    verified: bool


def _verified(report: dict[str, Any], signature: str, public_key: str, digest: str) -> bool:
    try:
        verify_report(report, signature, public_key)
    except SignatureInvalid:
        return False
    return hashlib.sha256(canonical_json(report)).hexdigest() == digest


async def _from_database(
    settings: Settings, partner: str, limit: int
) -> tuple[list[_Shown], dict[str, Any]]:
    async with _service(settings) as reports:
        await reports.partners.agreement(partner)  # partner_not_found, clearly
        rows = await reports.reports(partner, limit)
        budget = (await reports.budget(partner)).to_json()
    shown = [
        _Shown(r.report, r.log_index, _verified(r.report, r.signature, r.public_key, r.report_hash))
        for r in rows
    ]
    return shown, budget


def _from_server(
    server: str, partner: str, secret: str, limit: int
) -> tuple[list[_Shown], dict[str, Any] | None]:
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(
            "the URL must start with http:// or https://", param_hint="--server"
        )
    basic = base64.b64encode(f"{partner}:{secret}".encode()).decode()
    with httpx.Client(base_url=server.rstrip("/"), timeout=30.0) as client:
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "reports:read"},
            headers={"Authorization": f"Basic {basic}"},
        )
        if token.status_code != 200:
            raise ClearpostError(
                f"the server refused the client credentials ({token.status_code})",
                code="token_refused",
            )
        got = client.get(
            "/v1/partner/reports",
            params={"limit": limit},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        if got.status_code != 200:
            raise ClearpostError(f"GET /v1/partner/reports: {got.status_code}", code="http_error")
    shown = []
    for item in got.json()["reports"]:
        report = item["report"]
        ok = _verified(report, item["signature"], item["public_key"], item["report_hash"])
        shown.append(_Shown(report, int(item["log_index"]), ok and report["partner"] == partner))
    return shown, got.json().get("budget")


@app.command("show")
def show_command(
    partner: PartnerOpt,
    chart: Annotated[
        Path | None,
        typer.Option("--chart", help="Draw shares sent and clicks per period into this PNG."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Newest periods to show.")] = 26,
    server: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--server", help="Fetch as the partner from this server instead."),
    ] = None,
    client_secret: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--client-secret",
            envvar="CLEARPOST_CLIENT_SECRET",
            help="The partner's client secret (with --server).",
        ),
    ] = None,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A partner's released reports (noisy counts only) as a table; each signature and hash
    is verified. With --chart, also draw shares sent and clicks per period."""
    try:
        if server is not None:
            if not client_secret:
                raise typer.BadParameter(
                    "give --client-secret or CLEARPOST_CLIENT_SECRET", param_hint="--server"
                )
            shown, budget = _from_server(server, partner, client_secret, limit)
        else:
            settings = settings_from(config, database=database, data_dir=data_dir)
            shown, budget = asyncio.run(_from_database(settings, partner, limit))
    except ClearpostError as exc:
        raise _fail(exc) from exc
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the server: {exc}", EXIT_ERROR) from exc
    shown.sort(key=lambda s: int(s.report["period"]["start"]))
    if as_json:
        out.print_json(
            json.dumps(
                [{"log_index": s.log_index, "verified": s.verified, **s.report} for s in shown]
            )
        )
    else:
        _table(partner, shown, budget)
    if chart is not None:
        _chart(partner, shown, chart)
        err.print(f"chart written to {chart}")
    if not all(s.verified for s in shown):
        raise fail("a report failed signature or hash verification", EXIT_UNVERIFIED)


def total(report: dict[str, Any], metric: str) -> tuple[int, int]:
    """A released total and the half-width of its 95% interval. Version 2 reports carry the
    interval; for version 1 it follows from the measurement's published scale."""
    value = report["totals"][metric]
    if isinstance(value, dict):
        return int(value["value"]), int(value["high"]) - int(value["value"])
    for m in report["privacy"]["measurements"]:
        if m["name"] == f"totals.{metric}":
            return int(value), margin(float(m["scale"]))
    return int(value), 0


NEGATIVE_NOTE = (
    "A count below zero is noise larger than the count itself: the true count is at least 0 "
    "and, with 95% probability, within ± of the value shown. It is published as drawn so "
    "that sums over periods stay unbiased."
)


def _budget_line(budget: dict[str, Any]) -> str:
    rollup = budget.get("rollup")  # absent from servers before 0.2
    line = f"privacy budget: ε {budget['epsilon_per_period']:g} per period, "
    if rollup:
        line += f"{rollup['epsilon']:g} per {rollup['days']}-day roll-up, "
    line += (
        f"{budget['epsilon_per_year']:g} per year; {budget['year']}: spent "
        f"{budget['spent_this_year']:g}, left {budget['left_this_year']:g}; "
        f"next period {budget['next_period']['id']}"
    )
    if rollup:
        line += f", next roll-up {rollup['next_window']['id']}"
    if "exposure_per_year" in budget:
        line += f"; at most ε {budget['exposure_per_year']:g} a year in all"
    return line


def is_rollup(report: dict[str, Any]) -> bool:
    return report.get("kind") == "rollup"


def _table(partner: str, shown: list[_Shown], budget: dict[str, Any] | None) -> None:
    """Period reports, then roll-ups (if any) in a table of their own, then the budget."""
    if not shown:
        out.print(f"no released reports for {partner} yet")
        if budget is not None:
            out.print(_budget_line(budget))
        return
    periods = [s for s in shown if not is_rollup(s.report)]
    rollups = [s for s in shown if is_rollup(s.report)]
    negative = False
    if periods:
        negative = _rows(f"{partner}: released reports", "period", periods)
    if rollups:
        negative = _rows(f"{partner}: roll-ups", "window", rollups) or negative
    out.print(
        "period = its first day (UTC); window = a roll-up's days (UTC, end exclusive); "
        "sent = shares sent; recip. = their recipients; "
        "± = half-width of the 95% interval of the noise on the count to its left; "
        "items = items with a published cell; hid. = items with no cell above its "
        "threshold; log = transparency-log index; check = signature and hash (ok: verified)"
    )
    if negative:
        out.print(f"* {NEGATIVE_NOTE}")
    if budget is not None:
        out.print(_budget_line(budget))


def _rows(title: str, first: str, shown: list[_Shown]) -> bool:
    """Print one table of reports; True if a total in it is negative."""
    epsilons = sorted({f"{s.report['privacy']['epsilon']:g}" for s in shown})
    days = sorted(
        {(s.report["period"]["end"] - s.report["period"]["start"]) // DAY_MS for s in shown}
    )
    table = Table(
        title=f"{title}, noisy counts with 95% intervals",
        caption=f"ε {', '.join(epsilons)} and {', '.join(map(str, days))} days per {first}",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column(first, no_wrap=True)
    for name in ("intents", "sent", "recip.", "clicks"):
        table.add_column(name, justify="right", no_wrap=True)
        table.add_column("±", justify="right", no_wrap=True, style="dim")
    for name in ("items", "hid.", "log"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("check", no_wrap=True)
    negative = False
    for s in shown:
        r = s.report
        cells: list[str] = []
        for metric in METRICS:
            value, plus = total(r, metric)
            negative = negative or value < 0
            cells += [f"[yellow]{value}*[/yellow]" if value < 0 else str(value), str(plus)]
        table.add_row(
            r["period"]["id"] if first == "window" else r["period"]["id"].split("/")[0],
            *cells,
            str(len(r["items"])),
            str(r["suppressed_items"]),
            str(s.log_index),
            "[green]ok[/green]" if s.verified else "[red]INVALID[/red]",
        )
    out.print(table)
    return negative


def _chart(partner: str, shown: list[_Shown], path: Path) -> None:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise fail("--chart needs matplotlib: pip install matplotlib", EXIT_ERROR) from exc
    shown = [s for s in shown if not is_rollup(s.report)]  # a roll-up is not a period
    starts = [str(s.report["period"]["id"]).split("/")[0] for s in shown]  # one tick each
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.subplots()
    lowest = 0
    series = (("shares", "shares sent", "o", -0.08), ("clicks", "clicks", "s", 0.08))
    for metric, label, marker, dodge in series:  # side by side, so whiskers do not overlap
        pairs = [total(s.report, metric) for s in shown]
        lowest = min([lowest, *(v - m for v, m in pairs)])
        ax.errorbar(
            [i + dodge for i in range(len(shown))],
            [v for v, _ in pairs],
            yerr=[m for _, m in pairs],
            marker=marker,
            capsize=4,
            label=label,
        )
    ax.set_xticks(range(len(shown)), starts)
    if lowest < 0:  # counts cannot be negative: shade where only noise can take a value
        ax.axhspan(lowest * 1.1, 0, color="0.92", zorder=0, label="below 0: noise only")
    epsilons = sorted({s.report["privacy"]["epsilon"] for s in shown})
    ax.set_title(f"{partner}: shares sent and clicks per report period")
    ax.set_xlabel("period start (UTC)")
    ax.set_ylabel(f"noisy count (ε = {', '.join(f'{e:g}' for e in epsilons) or '-'} per period)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.grid(alpha=0.3)
    ax.legend(title="whiskers: 95% interval", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.text(
        0.01,
        0.005,
        "A value below 0 means the noise drawn was larger than the count: the true count is\n"
        "at least 0 and lies within the whisker with 95% probability.",
        fontsize=8,
        color="0.3",
        va="bottom",
    )
    fig.get_layout_engine().set(rect=(0, 0.07, 1, 0.93))  # type: ignore[union-attr,call-arg]
    fig.autofmt_xdate()
    fig.savefig(path, dpi=120)
