"""Partner reports: released on schedule when a period closes, or by an operator; listed
for the partner they are about.

A release, in order: read the period's activity, bound each user's contribution, add
OpenDP noise composed to the agreement's epsilon, drop small items, sign the report, then
in one transaction spend the period's budget (ledger), append the ``report`` log entry and
store the report. Only then can the partner fetch it. The raw activity and the true counts
exist only inside ``_release``: they are never stored, logged or returned.

Several processes on PostgreSQL may all run the scheduler: they may all compute a release,
but the ledger's unique constraint lets exactly one commit; the others' noisy results are
dropped unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from clearpost.core.clock import Clock
from clearpost.core.errors import ClearpostError, Conflict, NotFound
from clearpost.core.partners.agreement import Agreement
from clearpost.core.privacy import (
    Bounds,
    BudgetSpent,
    Period,
    ReportSigner,
    build_report,
    choose_period,
    contributions,
    next_period,
    plan_release,
    release,
    report_bytes,
    report_entry,
    report_hash,
)
from clearpost.core.tlog.entries import encode_entry
from clearpost.server.config import Settings
from clearpost.server.services.partners import PartnerService
from clearpost.storage.db import Database
from clearpost.storage.sql.partners import AgreementVersion
from clearpost.storage.sql.reports import LedgerRow, ReportRow, ReportStore

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


@dataclass(frozen=True, slots=True)
class Released:
    """A report as the partner sees it: the signed object, and where it is in the log."""

    report_id: str
    partner_id: str
    period: Period
    report: dict[str, Any]
    body: str
    """The report's RFC 8785 bytes as text: exactly what is signed and hashed."""
    report_hash: str
    signature: str
    public_key: str
    log_index: int
    released_at: int

    @classmethod
    def from_row(cls, row: ReportRow) -> Released:
        return cls(
            row.report_id,
            row.partner_id,
            Period(row.period_start, row.period_end),
            orjson.loads(row.body),
            row.body,
            row.report_hash,
            row.signature,
            row.public_key,
            row.log_index,
            row.released_at,
        )


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
        """The partner's first period without a released report."""
        agreement, _, registered = await self._partner(partner_id)
        last_end = await self.store.last_end(partner_id)
        return next_period(registered, agreement.report_cadence_days, last_end)

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
        last_end = await self.store.last_end(partner_id)
        due = next_period(registered, agreement.report_cadence_days, last_end)
        chosen = choose_period(period, due, self.clock.now_ms())
        return await self._release(agreement, version, chosen)

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
            last_end = await self.store.last_end(partner_id)
            due = next_period(registered, agreement.report_cadence_days, last_end)
            if self.clock.now_ms() < due.end_ms + self.grace_ms:
                break
            try:
                out.append(await self._release(agreement, version, due))
            except BudgetSpent:
                log.info("report %s for %s was released by another process", due.id, partner_id)
        return out

    async def _release(
        self, agreement: Agreement, version: AgreementVersion, period: Period
    ) -> Released:
        partner_id = agreement.partner_id
        now = self.clock.now_ms()
        bounds = Bounds(
            items_per_user=self.max_items_per_user,
            shares_per_item=agreement.max_shares_per_item,
            clicks_per_share=agreement.max_clicks_per_share,
            recipients_per_share=self.max_recipients_per_share,
        )
        activity = await self.store.activity(partner_id, period.start_ms, period.end_ms)
        plan = plan_release(agreement.epsilon_per_period, bounds, activity.keys)
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
        )
        digest = report_hash(report)
        entry = report_entry(partner_id, period.id, digest, plan.epsilon, now)
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
        )
        index = await self.store.release(row, plan.epsilon, encode_entry(entry))
        if self.on_logged is not None:
            self.on_logged()
        log.info(
            "released report %s for %s (%s, epsilon %s) at log index %d",
            row.report_id,
            partner_id,
            period.id,
            plan.epsilon,
            index,
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_seconds)

    async def next_pass(self, timeout: float = 10.0) -> None:
        """Wake the scheduler and wait until a pass that started after this call has ended
        (for tests and operators that just moved the clock)."""
        want = self._started + 1
        self.wake()
        async with asyncio.timeout(timeout), self._passes:
            await self._passes.wait_for(lambda: self._finished >= want)
