"""Partner reports: released on schedule when a period closes, or by an operator; listed
for the partner they are about.

A release, in order: check the year's budget, read the period's activity, bound each
user's contribution, add OpenDP noise composed to the agreement's epsilon, drop small
cells, sign the report, then in one transaction spend the period's budget (ledger), append
the ``report`` log entry and store the report. Only then can the partner fetch it. The raw
activity and the true counts exist only inside ``_release``: they are never stored, logged
or returned.

An agreement that asks for a roll-up (``rollup_days``, ``rollup_epsilon``) also gets, after
each roll-up window closes, one report over the whole window, released the same way from
its own epsilon. Roll-up windows form their own chain from the day the agreement asked for
them; the year budget counts periods and roll-ups together.

Several processes on PostgreSQL may all run the scheduler: they may all compute a release,
but the ledger's unique constraint lets exactly one commit; the others' noisy results are
dropped unseen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import orjson

from clearpost.core.clock import Clock
from clearpost.core.errors import ClearpostError, Conflict, NotFound
from clearpost.core.partners.agreement import Agreement, agreement_from_json
from clearpost.core.privacy import (
    Bounds,
    BudgetSpent,
    Period,
    ReportSigner,
    YearBudgetSpent,
    build_report,
    check_year_budget,
    choose_period,
    contributions,
    next_period,
    next_period_in_budget,
    parse_period,
    plan_release,
    release,
    report_bytes,
    report_entry,
    report_hash,
    spent_by_year,
    year_of,
)
from clearpost.core.tlog.entries import encode_entry
from clearpost.core.waiting import wait_event
from clearpost.server.config import Settings
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.report_views import Budget, Released, Rollup
from clearpost.storage.db import Database
from clearpost.storage.sql.partners import AgreementVersion
from clearpost.storage.sql.reports import PERIOD, ROLLUP, LedgerRow, ReportRow, ReportStore

log = logging.getLogger("clearpost.reports")

REPORT_SCOPE = "reports:read"
MAX_CATCH_UP = 500
"""Periods one scheduler pass releases for one partner (after a long outage)."""


def load_or_create_report_key(path: Path) -> ReportSigner:
    """Read the report key at ``path``; create it (mode 0600) if the file does not exist."""
    if path.exists():
        return load_report_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = ReportSigner.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return load_report_key(path)
    with os.fdopen(fd, "w") as out:
        out.write(signer.reveal_text() + "\n")
    return signer


def load_report_key(path: Path) -> ReportSigner:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClearpostError(
            f"cannot read the report key {path}: {exc.strerror}; use the server's data "
            "directory (or report_key_file)",
            code="report_key_missing",
        ) from exc
    return ReportSigner.from_text(text)


class ReportService:
    def __init__(
        self,
        store: ReportStore,
        partners: PartnerService,
        signer: ReportSigner,
        clock: Clock,
        *,
        max_items_per_user: int,
        max_recipients_per_share: int,
        grace_seconds: float,
        check_seconds: float,
    ) -> None:
        Bounds(max_items_per_user, 1, 1, max_recipients_per_share)  # fail at start, not later
        self.store, self.partners, self.signer, self.clock = store, partners, signer, clock
        self.max_items_per_user = max_items_per_user
        self.max_recipients_per_share = max_recipients_per_share
        self.grace_ms = int(grace_seconds * 1000)
        self.check_seconds = check_seconds
        self.on_logged: Callable[[], None] | None = None
        self._wake = asyncio.Event()
        self._passes = asyncio.Condition()
        self._started = self._finished = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        partners: PartnerService,
        signer: ReportSigner,
        clock: Clock,
    ) -> ReportService:
        return cls(
            ReportStore(db),
            partners,
            signer,
            clock,
            max_items_per_user=settings.report_max_items_per_user,
            max_recipients_per_share=settings.report_max_recipients_per_share,
            grace_seconds=settings.report_grace_seconds,
            check_seconds=settings.report_check_seconds,
        )

    @property
    def public_key(self) -> str:
        return self.signer.public_key

    # --- periods ---

    async def _partner(self, partner_id: str) -> tuple[Agreement, AgreementVersion, int]:
        agreement, version = await self.partners.agreement(partner_id)
        row = await self.partners.store.partner(partner_id)
        if row is None:
            raise NotFound(f"no partner {partner_id[:40]!r}", code="partner_not_found")
        return agreement, version, row.created_at

    async def next_period(self, partner_id: str) -> Period:
        """The partner's first period without a released report that fits its year's budget."""
        agreement, _, registered = await self._partner(partner_id)
        return await self._due(agreement, registered)

    async def _spent(self, partner_id: str) -> dict[int, float]:
        return spent_by_year([(r.period_start, r.epsilon) for r in await self.ledger(partner_id)])

    async def _due(self, agreement: Agreement, registered: int) -> Period:
        last_end = await self.store.last_end(agreement.partner_id)
        return next_period_in_budget(
            registered,
            agreement.report_cadence_days,
            last_end,
            agreement.epsilon_per_period,
            agreement.yearly_budget,
            await self._spent(agreement.partner_id),
        )

    async def _due_rollup(self, agreement: Agreement, registered: int) -> Period | None:
        """The first roll-up window not yet released whose year has the roll-up's epsilon
        left; None when the agreement asks for no roll-up.

        Roll-ups never reach back before the agreement asked for them: the chain starts on
        the day the current unbroken run of agreement versions with a roll-up began (the
        registration day if the first version had one), or goes on from the last released
        window if that is later."""
        if agreement.rollup_days is None or agreement.rollup_epsilon is None:
            return None
        since = registered
        for version in sorted(
            await self.partners.versions(agreement.partner_id), key=lambda v: -v.version
        ):
            if agreement_from_json(orjson.loads(version.body)).rollup_days is None:
                break
            since = max(registered, version.created_at)
        last_end = await self.store.last_end(agreement.partner_id, ROLLUP)
        if last_end is not None and last_end < since:
            last_end = None  # roll-ups were dropped and asked for again: start afresh
        return next_period_in_budget(
            since,
            agreement.rollup_days,
            last_end,
            agreement.rollup_epsilon,
            agreement.yearly_budget,
            await self._spent(agreement.partner_id),
        )

    async def budget(self, partner_id: str) -> Budget:
        """The agreement's budget, what was spent in the year of the next period, and that
        period (``left_this_year`` is what the rest of that year's periods and roll-ups can
        spend), and the roll-up's next window if the agreement asks for one."""
        agreement, _, registered = await self._partner(partner_id)
        rows = await self.ledger(partner_id)
        due = await self._due(agreement, registered)
        year = year_of(due.start_ms)
        window = await self._due_rollup(agreement, registered)
        rollup = None
        if window is not None and agreement.rollup_days and agreement.rollup_epsilon:
            released = sum(1 for r in rows if r.kind == ROLLUP)
            rollup = Rollup(agreement.rollup_days, agreement.rollup_epsilon, released, window)
        return Budget(
            epsilon_per_period=agreement.epsilon_per_period,
            epsilon_per_year=agreement.yearly_budget,
            year=year,
            spent_this_year=sum(r.epsilon for r in rows if year_of(r.period_start) == year),
            periods_released=sum(1 for r in rows if r.kind == PERIOD),
            spent_total=sum(r.epsilon for r in rows),
            next_period=due,
            epsilon_scheduled_per_year=agreement.scheduled_per_year,
            rollup=rollup,
        )

    def bounds(self, agreement: Agreement) -> Bounds:
        """The agreement's contribution bounds; the server settings stand in for the two
        that agreements logged before Clearpost 0.2 do not state."""
        return Bounds(
            items_per_user=agreement.max_items_per_user or self.max_items_per_user,
            shares_per_item=agreement.max_shares_per_item,
            clicks_per_share=agreement.max_clicks_per_share,
            recipients_per_share=agreement.max_recipients_per_share
            or self.max_recipients_per_share,
        )

    # --- releasing ---

    async def release(self, partner_id: str, period: str | None = None) -> Released:
        """An operator's release of ``period`` (``YYYY-MM-DD`` start, or the next one).

        Refused with ``budget_spent`` (409) for a period already released,
        ``period_not_next`` for one after the next, ``period_open`` before it ends."""
        agreement, version, registered = await self._partner(partner_id)
        if REPORT_SCOPE not in agreement.scopes:
            raise Conflict(
                f"the agreement of {partner_id!r} does not include {REPORT_SCOPE!r}",
                code="reports_not_agreed",
            )
        due = await self._due(agreement, registered)
        if period is not None:  # 1. a period the year's budget skipped is refused as such
            chain = next_period(
                registered,
                agreement.report_cadence_days,
                await self.store.last_end(partner_id),
            )
            start, _ = parse_period(period)
            if chain.start_ms <= start < due.start_ms:
                skipped = Period(start, start + agreement.report_cadence_days * 86_400_000)
                check_year_budget(
                    skipped,
                    agreement.epsilon_per_period,
                    agreement.yearly_budget,
                    await self._spent(partner_id),
                )
        chosen = choose_period(period, due, self.clock.now_ms())
        return await self._release(agreement, version, chosen)

    async def release_rollup(self, partner_id: str) -> Released:
        """An operator's release of the next closed roll-up window (no grace time).

        Refused with ``rollup_not_agreed`` when the agreement asks for none, ``period_open``
        before the window ends, ``year_budget_spent`` over the year's budget."""
        agreement, version, registered = await self._partner(partner_id)
        if REPORT_SCOPE not in agreement.scopes:
            raise Conflict(
                f"the agreement of {partner_id!r} does not include {REPORT_SCOPE!r}",
                code="reports_not_agreed",
            )
        window = await self._due_rollup(agreement, registered)
        if window is None:
            raise Conflict(
                f"the agreement of {partner_id!r} asks for no roll-up", code="rollup_not_agreed"
            )
        return await self._release(
            agreement, version, choose_period(None, window, self.clock.now_ms()), rollup=True
        )

    async def release_due(self) -> list[Released]:
        """Release every closed period (plus the grace time) of every partner with
        ``reports:read`` in its agreement. A period another process released first is
        skipped; a failure with one partner does not hold up the others."""
        out: list[Released] = []
        for partner in await self.partners.all():
            try:
                out.extend(await self._release_due_for(partner.partner_id, partner.created_at))
            except Exception:
                log.exception("releasing reports for %s failed; retrying later", partner.partner_id)
        return out

    async def _release_due_for(self, partner_id: str, registered: int) -> list[Released]:
        out: list[Released] = []
        agreement, version = await self.partners.agreement(partner_id)
        if REPORT_SCOPE not in agreement.scopes:
            return out
        for _ in range(MAX_CATCH_UP):
            due = await self._due(agreement, registered)
            if self.clock.now_ms() < due.end_ms + self.grace_ms:
                break
            try:
                out.append(await self._release(agreement, version, due))
            except BudgetSpent:
                log.info("report %s for %s was released by another process", due.id, partner_id)
            except YearBudgetSpent as exc:  # another process spent the year meanwhile
                log.warning("report %s for %s refused: %s", due.id, partner_id, exc.message)
                break
        out.extend(await self._release_rollups_due(agreement, version, registered))
        return out

    async def _release_rollups_due(
        self, agreement: Agreement, version: AgreementVersion, registered: int
    ) -> list[Released]:
        """Release every closed roll-up window (plus the grace time), in order."""
        out: list[Released] = []
        for _ in range(MAX_CATCH_UP):
            window = await self._due_rollup(agreement, registered)
            if window is None or self.clock.now_ms() < window.end_ms + self.grace_ms:
                break
            try:
                out.append(await self._release(agreement, version, window, rollup=True))
            except BudgetSpent:
                log.info(
                    "roll-up %s for %s was released by another process",
                    window.id,
                    agreement.partner_id,
                )
            except YearBudgetSpent as exc:
                log.warning(
                    "roll-up %s for %s refused: %s", window.id, agreement.partner_id, exc.message
                )
                break
        return out

    async def _release(
        self,
        agreement: Agreement,
        version: AgreementVersion,
        period: Period,
        *,
        rollup: bool = False,
    ) -> Released:
        """Release ``period`` (with ``rollup``, the roll-up window) at its epsilon."""
        partner_id = agreement.partner_id
        now = self.clock.now_ms()
        epsilon = agreement.rollup_epsilon if rollup else agreement.epsilon_per_period
        if epsilon is None:
            raise Conflict(
                f"the agreement of {partner_id!r} asks for no roll-up", code="rollup_not_agreed"
            )
        check_year_budget(  # before any data is read
            period,
            epsilon,
            agreement.yearly_budget,
            await self._spent(partner_id),
        )
        bounds = self.bounds(agreement)
        activity = await self.store.activity(partner_id, period.start_ms, period.end_ms)
        plan = plan_release(  # composed and checked by OpenDP before any count is made
            epsilon,
            bounds,
            activity.keys,
            totals_share=agreement.report_totals_share,
        )
        noisy = release(plan, contributions(activity, bounds))
        del activity  # the raw counts go no further
        report = build_report(
            partner_id=partner_id,
            agreement_version=version.version,
            period=period,
            released_at=now,
            plan=plan,
            noisy=noisy,
            suppression_threshold=agreement.suppression_threshold,
            public_key=self.signer.public_key,
            rollup=rollup,
        )
        digest = report_hash(report)
        entry = report_entry(partner_id, period.id, digest, plan.epsilon, now, rollup=rollup)
        row = ReportRow(
            report_id="rp_" + secrets.token_urlsafe(16),
            partner_id=partner_id,
            period_start=period.start_ms,
            period_end=period.end_ms,
            body=report_bytes(report).decode(),
            report_hash=digest,
            signature=self.signer.sign(report),
            public_key=self.signer.public_key,
            log_index=0,
            released_at=now,
            kind=ROLLUP if rollup else PERIOD,
        )
        index = await self.store.release(row, plan.epsilon, encode_entry(entry))
        if self.on_logged is not None:
            self.on_logged()
        year = year_of(period.start_ms)
        spent = (await self._spent(partner_id)).get(year, 0.0)
        log.info(
            "released %s %s for %s (%s, epsilon %s) at log index %d; epsilon spent in %d: %g of %g",
            "roll-up" if rollup else "report",
            row.report_id,
            partner_id,
            period.id,
            plan.epsilon,
            index,
            year,
            spent,
            agreement.yearly_budget,
        )
        return Released(
            row.report_id,
            partner_id,
            period,
            report,
            row.body,
            digest,
            row.signature,
            row.public_key,
            index,
            now,
            row.kind,
        )

    # --- reading ---

    async def reports(self, partner_id: str, limit: int = 50) -> list[Released]:
        """The partner's own released reports, newest period first."""
        return [Released.from_row(r) for r in await self.store.reports_of(partner_id, limit)]

    async def ledger(self, partner_id: str) -> list[LedgerRow]:
        return await self.store.ledger(partner_id)

    # --- the scheduler ---

    def wake(self) -> None:
        """Make the scheduler look now instead of at its next check."""
        self._wake.set()

    async def run_scheduler(self) -> None:
        """Forever: release what is due, then wait ``check_seconds`` or until woken."""
        while True:
            self._wake.clear()
            self._started += 1
            try:
                await self.release_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("report release pass failed; retrying at the next check")
            async with self._passes:
                self._finished = self._started
                self._passes.notify_all()
            await wait_event(self._wake, self.check_seconds)

    async def next_pass(self, timeout: float = 10.0) -> None:
        """Wake the scheduler and wait until a pass that started after this call has ended
        (for tests and operators that just moved the clock)."""
        want = self._started + 1
        self.wake()
        async with asyncio.timeout(timeout), self._passes:
            await self._passes.wait_for(lambda: self._finished >= want)
