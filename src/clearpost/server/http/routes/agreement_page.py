"""``/agreements/{partner_id}``: a partner's agreement as a page a person can read."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from clearpost.server.http.deps import Svc
from clearpost.web.agreement import agreement_page
from clearpost.web.pages import render

router = APIRouter(tags=["partners"])


@router.get("/agreements/{partner_id}", response_class=HTMLResponse, include_in_schema=False)
async def agreement(partner_id: str, svc: Svc) -> HTMLResponse:
    """The current version in plain words (scopes as the consent page names them), every
    earlier version, and links to each version's log entry and to the exact JSON."""
    names = {p.partner_id: p.name for p in await svc.partners.all()}
    if partner_id not in names:
        html = render(
            "message",
            title="No such app",
            heading="No such app",
            message="No partner app of that name is registered on this Clearpost server.",
        )
        return HTMLResponse(html, status_code=404, headers={"Cache-Control": "no-store"})
    versions = await svc.partners.versions(partner_id)
    return HTMLResponse(
        agreement_page(names[partner_id], partner_id, versions),
        headers={"Cache-Control": "no-cache"},
    )
