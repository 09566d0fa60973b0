"""ASGI middleware: a hard cap on request bodies, before any route reads them; and the
security headers every response carries.

The body is read here (at most ``max_bytes`` + one chunk) and replayed to the app, so an
oversized body — announced by Content-Length or not — is refused with 413 before any
route or body parser sees it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearpost.server.http.errors import problem


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]
        await self.app(scope, _replay(replay, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "Content Too Large",
            "payload_too_large",
            f"the request body is over {self.max_bytes} bytes",
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()  # e.g. http.disconnect while a long-poll waits
        return {"type": "http.disconnect"}

    return receive


PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""For the server-rendered pages (sign-in, consent, messages): no script at all, inline
style only, never framed. ``form-action`` is left out on purpose: the consent form's answer
redirects to the partner, which browsers would check against it."""
_OWN_CSP = ("/docs", "/redoc")  # FastAPI's API explorer loads its own scripts


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every response; on HTML pages also the CSP
    above and ``X-Frame-Options: DENY`` (issue 15: pages had no CSP or nosniff, and the
    login page re-rendered after a wrong password could be framed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = not str(scope.get("path", "")).startswith(_OWN_CSP)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if page and headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
                    headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, with_headers)
