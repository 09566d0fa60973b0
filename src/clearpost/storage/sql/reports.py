"""Released partner reports and the privacy-budget ledger; the raw activity they count.

A release is one transaction: spend the budget (ledger row, unique per partner, kind and
window start), append the ``report`` log entry, store the signed report. If another release
of the same period (or roll-up window) got there first the ledger insert fails, nothing is
written, and the caller gets ``BudgetSpent``. ``kind`` is ``"period"`` or ``"rollup"``. The raw
activity read here is
only ever handed to the mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from clearpost.core.privacy import Activity, BudgetSpent, ClickEvent, IntentEvent, ShareEvent
from clearpost.storage.db import Database
from clearpost.storage.schema import clicks, privacy_ledger, reports, share_intents, share_links
from clearpost.storage.sql import tlog

PERIOD, ROLLUP = "period", "rollup"


@dataclass(frozen=True, slots=True)
class ReportRow:
    report_id: str
    partner_id: str
    period_start: int
    period_end: int
    body: str
    """The report's canonical JSON (RFC 8785), exactly the bytes signed and hashed."""
    report_hash: str
    signature: str
    public_key: str
    log_index: int
    released_at: int
    kind: str = PERIOD


@dataclass(frozen=True, slots=True)
class LedgerRow:
    report_id: str
    partner_id: str
    period_start: int
    period_end: int
    epsilon: float
    spent_at: int
    kind: str = PERIOD


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def activity(self, partner_id: str, start_ms: int, end_ms: int) -> Activity:
        """Every intent created, share completed and click made in ``[start, end)``, and the
        URLs of the partner's links alive at some time in it (the report's items)."""
        si = share_intents.c
        async with self.db.read() as conn:
            intent_rows = await conn.execute(
                select(si.user_id, si.url, si.created_at).where(
                    si.partner_id == partner_id, si.created_at >= start_ms, si.created_at < end_ms
                )
            )
            intents = [IntentEvent(r[0], r[1], int(r[2])) for r in intent_rows]
            share_rows = await conn.execute(
                select(si.user_id, si.url, si.intent_id, si.completed_at, si.recipients).where(
                    si.partner_id == partner_id,
                    si.completed_at >= start_ms,
                    si.completed_at < end_ms,
                )
            )
            shares = [ShareEvent(r[0], r[1], r[2], int(r[3]), int(r[4] or 0)) for r in share_rows]
            click_rows = await conn.execute(
                select(si.user_id, si.url, clicks.c.token, share_links.c.created_at, clicks.c.at)
                .select_from(
                    clicks.join(share_links, share_links.c.token == clicks.c.token).join(
                        share_intents, si.intent_id == share_links.c.intent_id
                    )
                )
                .where(
                    clicks.c.partner_id == partner_id,
                    clicks.c.at >= start_ms,
                    clicks.c.at < end_ms,
                )
            )
            click_events = [ClickEvent(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in click_rows]
            key_rows = await conn.execute(
                select(share_links.c.url)
                .distinct()
                .where(
                    share_links.c.partner_id == partner_id,
                    share_links.c.created_at < end_ms,
                    share_links.c.expires_at > start_ms,
                )
                .order_by(share_links.c.url)
            )
            keys = tuple(r[0] for r in key_rows)
        return Activity(intents, shares, click_events, keys)

    async def release(self, report: ReportRow, epsilon: float, entry: bytes) -> int:
        """Spend the period's budget, log the report and store it; returns the log index.
        Raises BudgetSpent if the period was released already (by anyone)."""
        try:
            async with self.db.write() as conn:
                await conn.execute(  # first: a concurrent release waits here, then fails
                    privacy_ledger.insert().values(
                        report_id=report.report_id,
                        partner_id=report.partner_id,
                        period_start=report.period_start,
                        period_end=report.period_end,
                        epsilon=epsilon,
                        spent_at=report.released_at,
                        kind=report.kind,
                    )
                )
                (index,) = await tlog.append_in(
                    conn, [tlog.PendingEntry(entry, None)], report.released_at
                )
                values = {name: getattr(report, name) for name in ReportRow.__slots__}
                await conn.execute(reports.insert().values(**{**values, "log_index": index}))
                return index
        except IntegrityError as exc:
            raise BudgetSpent(
                "the privacy budget of this period was already spent on a released report",
                partner=report.partner_id,
            ) from exc

    async def last_end(self, partner_id: str, kind: str = PERIOD) -> int | None:
        """Where the partner's last released period (or roll-up window) ended (None before
        the first)."""
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    select(func.max(privacy_ledger.c.period_end)).where(
                        privacy_ledger.c.partner_id == partner_id,
                        privacy_ledger.c.kind == kind,
                    )
                )
            ).scalar_one()
            return None if value is None else int(value)

    async def ledger(self, partner_id: str) -> list[LedgerRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    privacy_ledger.c.report_id,
                    privacy_ledger.c.partner_id,
                    privacy_ledger.c.period_start,
                    privacy_ledger.c.period_end,
                    privacy_ledger.c.epsilon,
                    privacy_ledger.c.spent_at,
                    privacy_ledger.c.kind,
                )
                .where(privacy_ledger.c.partner_id == partner_id)
                .order_by(privacy_ledger.c.period_start, privacy_ledger.c.kind)
            )
            return [
                LedgerRow(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), int(r[5]), r[6])
                for r in rows
            ]

    async def reports_of(self, partner_id: str, limit: int) -> list[ReportRow]:
        """The partner's released reports and roll-ups, newest first (by the end of their
        window; a roll-up before the period that ends with it)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*(reports.c[name] for name in ReportRow.__slots__))
                .where(reports.c.partner_id == partner_id)
                .order_by(reports.c.period_end.desc(), reports.c.period_start)
                .limit(limit)
            )
            return [ReportRow(*r) for r in rows]
