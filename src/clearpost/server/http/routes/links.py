"""Click links: ``/s/{token}`` counts a click and redirects to the partner's URL."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from clearpost.server.http.deps import Svc, client_ip
from clearpost.server.http.openapi import problems, raw
from clearpost.web.pages import render

router = APIRouter(tags=["links"])

_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get(
    "/s/{token}",
    response_class=HTMLResponse,
    responses=raw(
        302,
        "Counted; on to the partner's URL",
        headers={"Location": {"schema": {"type": "string"}}},
    )
    | raw(404, "No such link: a page that says so", content={"text/html": {"schema": {}}})
    | problems(429),
)
async def follow(token: str, request: Request, svc: Svc) -> Response:
    """Count the click and redirect (302), only to a domain in the partner's agreement. No
    cookies are set and nothing about the person clicking is stored or passed on."""
    svc.click_limiter.hit(client_ip(request))
    target = await svc.shares.follow(token) if len(token) <= 64 else None
    if target is None:
        html = render(
            "message",
            title="Link not found",
            heading="This link does not work",
            message="It may have expired. Ask the person who sent it to share it again.",
        )
        return HTMLResponse(html, status_code=404, headers=_PRIVATE)
    return RedirectResponse(target, status_code=302, headers=_PRIVATE)
