"""The web messenger's files: ``/`` (its page, through ``home``) and ``/app/<file>``.

The app is built from ``web/`` (TypeScript, bundled by esbuild) into ``clearpost/web/app/``
by ``make install``; without Node the directory is missing and ``/`` shows the plain page
saying so. Every file carries the app's Content-Security-Policy: scripts from this origin
only, WebAssembly compilation allowed (``wasm-unsafe-eval``, the crypto engine) but no
``eval``, connections to this origin only, never framed. The crypto worker gets the policy
from its own script's response, so it is on every file, not only the page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

import clearpost.web

router = APIRouter(tags=["meta"])

APP_DIR = Path(clearpost.web.__file__).parent / "app"

APP_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

_HEADERS = {
    "Content-Security-Policy": APP_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def built() -> bool:
    return (APP_DIR / "index.html").is_file()


def app_file(name: str) -> Response:
    """One file of the built app, or 404. Only plain names in the app directory."""
    suffix = Path(name).suffix
    path = APP_DIR / name
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not path.is_file():
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    return FileResponse(path, media_type=_TYPES[suffix], headers=_HEADERS)


@router.get("/app/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    return app_file(name)
