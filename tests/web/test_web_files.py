"""How ``clearpost serve`` serves the web app's files: the app at ``/``, its files under
``/app/`` with the app's Content-Security-Policy (also on the worker's script), the right
types (``application/wasm`` for streaming compilation), nothing outside the app directory,
and the other pages (consent, sign-in) keeping their own policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearpost.server.http.routes.webapp import APP_CSP
from tests.support.server import ServerProcess, start_server
from tests.web.browser import need_browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    need_browser()  # the built app (Node) among the rest
    tmp: Path = tmp_path_factory.mktemp("files")
    proc = start_server(tmp / "srv", f"sqlite+aiosqlite:///{tmp / 'srv' / 'cp.db'}")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/worker.js", "text/javascript; charset=utf-8"),
        ("/app/crypto.wasm", "application/wasm"),
        ("/app/style.css", "text/css; charset=utf-8"),
    ],
)
def test_app_files_carry_the_strict_policy(
    server: ServerProcess, path: str, content_type: str
) -> None:
    r = httpx.get(server.url + path)
    assert r.status_code == 200
    assert r.headers["content-type"] == content_type
    csp = r.headers["content-security-policy"]
    assert csp == APP_CSP
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_no_inline_script_and_names_only_this_origin(server: ServerProcess) -> None:
    html = httpx.get(server.url + "/").text
    assert '<script type="module" src="/app/app.js"></script>' in html
    assert html.count("<script") == 1 and "http://" not in html and "https://" not in html


@pytest.mark.parametrize(
    "path",
    ["/app/..%2F__init__.py", "/app/.built", "/app/pages.py", "/app/nothing.js", "/app/"],
)
def test_nothing_outside_the_built_files(server: ServerProcess, path: str) -> None:
    assert httpx.get(server.url + path).status_code == 404


def test_the_server_pages_keep_their_own_policy(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/oauth/authorize")
    assert "script-src" not in r.headers.get("content-security-policy", "script-src")
