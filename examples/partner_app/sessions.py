"""Server-side sessions for the example: the browser holds a random id, the tokens stay here.

Starlette's own ``SessionMiddleware`` keeps the whole session in a signed (not
encrypted) cookie, so OAuth tokens would travel to the browser. This middleware keeps
the session in memory and gives the browser only an opaque, ``HttpOnly``,
``SameSite=Lax`` cookie; ``request.session`` works as usual. Memory only: a restart
signs everyone out, which is fine for an example.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Session(dict[str, Any]):
    """A session's data, a lock for token refreshes, and a way to take a fresh id."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = asyncio.Lock()
        """Held while tokens are used: refresh tokens rotate, and a second concurrent
        refresh would present a spent one (which revokes the whole grant)."""
        self.rotate = False
        """Set on sign-in: the session moves to a new id (no session fixation)."""


class ServerSessions:
    def __init__(
        self,
        app: ASGIApp,
        *,
        cookie: str = "streamco_session",
        max_age: int = 8 * 3600,
        secure: bool = False,
    ) -> None:
        self.app, self.cookie, self.max_age, self.secure = app, cookie, max_age, secure
        self.sessions: dict[str, tuple[float, Session]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sid = self._sid(scope)
        now = time.monotonic()
        found = self.sessions.get(sid) if sid else None
        if found is None or found[0] < now:
            sid, session = None, Session()
        else:
            session = found[1]
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            nonlocal sid
            if message["type"] == "http.response.start" and (session or sid):
                if sid is None or session.rotate:
                    if sid is not None:
                        self.sessions.pop(sid, None)
                    sid, session.rotate = secrets.token_urlsafe(32), False
                    self._forget_expired()
                self.sessions[sid] = (time.monotonic() + self.max_age, session)
                attrs = f"Path=/; Max-Age={self.max_age}; HttpOnly; SameSite=Lax"
                headers = MutableHeaders(scope=message)
                secure = "; Secure" if self.secure else ""
                headers.append("Set-Cookie", f"{self.cookie}={sid}; {attrs}{secure}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for sid in [s for s, (expires, _) in self.sessions.items() if expires < now]:
            del self.sessions[sid]

    def _sid(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value.decode("latin-1"))
                if self.cookie in jar:
                    return jar[self.cookie].value
        return None
