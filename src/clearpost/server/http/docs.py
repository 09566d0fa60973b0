"""``/docs`` (Swagger UI) and ``/redoc`` with their scripts served from this server.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs: offline
they are blank, and online they tell third parties who reads the docs. The assets here come
from the ``fastapi-offline`` package (the swagger-ui-dist and redoc bundles, copied from npm
by its maintainer) and are served under ``/docs/assets``; the pages reference nothing but
this origin. Swagger UI's validator badge (which fetches from validator.swagger.io) is off,
and both pages carry a Content-Security-Policy that allows only this origin: ReDoc's sidebar
still asks cdn.redoc.ly for its "API docs by Redocly" logo, which the policy blocks (the
browser never sends that request, and ReDoc hides the broken image).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
"""What the pages load, all from ``ASSETS`` on this server."""


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """Forbid the page every other origin; its own inline script is allowed by its hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.findall(bytes(page.body))
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
        "connect-src 'self'; frame-ancestors 'none'"
    )
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def asset_dir() -> Path:
    """The directory in the installed ``fastapi_offline`` package that holds the bundles."""
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and the assets they load.

    The app must be created with ``docs_url=None, redoc_url=None`` so FastAPI does not add
    its CDN-backed pages first."""
    app.mount(ASSETS, StaticFiles(directory=asset_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
                oauth2_redirect_url=root + redirect_url,
                init_oauth={"usePkceWithAuthorizationCodeGrant": True},
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    async def swagger_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_origin_only(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route(redirect_url, swagger_redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
