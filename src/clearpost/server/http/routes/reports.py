"""``GET /v1/partner/reports``: a partner's own released reports (``reports:read``)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query

from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Svc, partner
from clearpost.server.http.openapi import ok
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.authorize import PartnerAccess

router = APIRouter(prefix="/v1", route_class=OrjsonRoute)


@router.get(
    "/partner/reports", tags=["partner API"], response_class=JSON, responses=ok(wire.Reports)
)
async def partner_reports(
    svc: Svc,
    access: Annotated[PartnerAccess, Depends(partner("reports:read"))],
    limit: int = Query(50, ge=1, le=200, description="at most this many, newest period first"),
) -> JSON:
    """The calling partner's released reports, newest period first, each exactly as signed.

    Every report is differentially private (see its ``privacy`` member), was appended to the
    transparency log before this endpoint could return it (``log_index``; the entry holds
    ``report_hash`` = SHA-256 of the report's RFC 8785 bytes), and is signed with Ed25519
    over those bytes by ``public_key``. A partner sees only its own reports. ``budget`` is
    the agreement's epsilon per period and per year, what the ledger spent in the year of
    the next period, what is left, and that period; ``exposure_per_year`` is the most
    epsilon all releases whose window starts in one year may spend (periods and roll-ups).

    ``kind`` is ``period`` for a period report and ``rollup`` for a roll-up over a longer
    window (agreements with ``rollup_days``), whose ``period`` is that window."""
    released = await svc.reports.reports(access.partner_id, limit)
    budget = await svc.reports.budget(access.partner_id)
    return JSON(
        {
            "partner_id": access.partner_id,
            "budget": budget.to_json(),
            "signing_key": {"alg": "Ed25519", "public_key": svc.reports.public_key},
            "reports": [
                {
                    "report_id": r.report_id,
                    "kind": r.kind,
                    "period": r.period.id,
                    "report": orjson.Fragment(r.body),
                    "report_hash": r.report_hash,
                    "signature": r.signature,
                    "public_key": r.public_key,
                    "log_index": r.log_index,
                    "released_at": r.released_at,
                }
                for r in released
            ],
        }
    )
