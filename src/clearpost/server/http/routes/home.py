"""``/``: the web messenger when it is built (``routes/webapp.py``); otherwise a small page
that says the server runs and where its API, docs and log are."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

import clearpost
from clearpost.server.http.deps import Svc
from clearpost.server.http.routes import webapp
from clearpost.web.pages import render

router = APIRouter(tags=["meta"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(svc: Svc) -> Response:
    if webapp.built():
        return webapp.app_file("index.html")
    html = render(
        "home",
        title="Clearpost",
        version=clearpost.__version__,
        base_url=svc.settings.base_url(),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})
