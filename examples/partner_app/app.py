"""StreamCo: an example Clearpost partner app (Starlette + uvicorn + authlib).

It shows the whole partner side of "tell friends what I'm watching":

- sign-in with OAuth 2.0 authorization code + PKCE (S256), with authlib's own client
  (``authlib.integrations.httpx_client.AsyncOAuth2Client``); ``state`` and the RFC 9207
  ``iss`` parameter are checked on the way back;
- tokens kept in a server-side session (the browser gets an opaque cookie), refreshed
  when they expire (refresh tokens rotate: one refresh at a time per session);
- "Share what I'm watching": ``POST /v1/partner/share-intents`` with ``share:intent``.
  The suggestion goes only to the user's own Clearpost devices; the user picks friends
  there, and StreamCo learns only how many.

Run (see README.md): ``STREAMCO_CLIENT_SECRET=... python examples/partner_app/app.py``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from pages import CATALOGUE, message, watch
from sessions import ServerSessions, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

log = logging.getLogger("streamco")

SCOPES = "profile:basic share:intent"


@dataclass(frozen=True)
class Config:
    clearpost_url: str
    """Clearpost's base URL (its OAuth metadata is found there)."""
    client_id: str
    client_secret: str
    port: int = 8765
    link_base: str = ""
    """Base of the links StreamCo shares; its host must be a link domain of the agreement."""

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Config:
        secret = env.get("STREAMCO_CLIENT_SECRET", "")
        if not secret:
            raise SystemExit("set STREAMCO_CLIENT_SECRET (printed by 'clearpost partner register')")
        port = int(env.get("STREAMCO_PORT", "8765"))
        return cls(
            clearpost_url=env.get("CLEARPOST_URL", "http://127.0.0.1:8448").rstrip("/"),
            client_id=env.get("STREAMCO_CLIENT_ID", "streamco"),
            client_secret=secret,
            port=port,
            link_base=env.get("STREAMCO_LINK_BASE", f"http://localhost:{port}").rstrip("/"),
        )


class NotConnected(Exception):
    """The session holds no usable Clearpost tokens (never connected, or revoked)."""


class StreamCo:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._metadata: dict[str, Any] | None = None

    async def metadata(self) -> dict[str, Any]:
        """Clearpost's RFC 8414 authorization-server metadata (fetched once)."""
        if self._metadata is None:
            url = self.config.clearpost_url + "/.well-known/oauth-authorization-server"
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(url)
                r.raise_for_status()
                self._metadata = dict(r.json())
        return self._metadata

    def oauth(self, session: Session | None = None, **kw: Any) -> AsyncOAuth2Client:
        """authlib's client; with a session, its tokens (and their refreshes) live there."""

        async def keep(token: dict[str, Any], **_: Any) -> None:
            if session is not None:
                session["token"] = dict(token)

        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            redirect_uri=self.config.redirect_uri,
            scope=SCOPES,
            code_challenge_method="S256",
            token=session.get("token") if session is not None else None,
            update_token=keep,
            timeout=10,
            **kw,
        )

    async def call(self, session: Session, method: str, path: str, **kw: Any) -> httpx.Response:
        """A partner API call with the session's token (refreshed if it expired)."""
        if "token" not in session:
            raise NotConnected
        meta = await self.metadata()
        async with session.lock:
            try:
                async with self.oauth(session, token_endpoint=meta["token_endpoint"]) as oauth:
                    url = self.config.clearpost_url + path
                    response: httpx.Response = await oauth.request(method, url, **kw)
            except AuthlibBaseError as exc:  # the refresh was refused: consent withdrawn
                log.info("token refresh refused: %s", exc)
                forget(session)
                raise NotConnected from exc
        if response.status_code == 401:
            forget(session)
            raise NotConnected
        return response


def forget(session: Session) -> None:
    for key in ("token", "profile"):
        session.pop(key, None)


def csrf_token(session: Session) -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def safe_next(value: str | None) -> str:
    """Only paths on this site; never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or urlsplit(value).netloc:
        return "/"
    return value


def create_app(config: Config) -> Starlette:
    streamco = StreamCo(config)

    def session_of(request: Request) -> Session:
        session: Session = request.scope["session"]
        return session

    async def home(request: Request) -> Response:
        return RedirectResponse("/watch/night-train", status_code=302)

    async def watch_page(request: Request) -> Response:
        show = CATALOGUE.get(request.path_params["slug"])
        if show is None:
            return HTMLResponse(message("Not found", "No such show."), status_code=404)
        session = session_of(request)
        profile = session.get("profile") if "token" in session else None
        return HTMLResponse(
            watch(
                show,
                connected_as=profile["display_name"] if profile else None,
                csrf=csrf_token(session),
                notice=session.pop("notice", None),
                problem=session.pop("problem", None),
            )
        )

    async def connect(request: Request) -> Response:
        """Send the browser to Clearpost's consent page (code flow, PKCE S256, state)."""
        session = session_of(request)
        meta = await streamco.metadata()
        verifier = generate_token(48)
        async with streamco.oauth() as oauth:
            url, state = oauth.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier
            )
        session["oauth"] = {
            "state": state,
            "verifier": verifier,
            "next": safe_next(request.query_params.get("next")),
        }
        return RedirectResponse(url, status_code=302)

    async def callback(request: Request) -> Response:
        """Back from Clearpost: check state and issuer, trade the code for tokens."""
        session = session_of(request)
        pending = session.pop("oauth", None)
        params = request.query_params
        if pending is None or params.get("state") != pending["state"]:
            return HTMLResponse(
                message("Sign-in expired", "This sign-in was not started here; try again."),
                status_code=400,
            )
        meta = await streamco.metadata()
        if params.get("iss") != meta["issuer"]:  # RFC 9207: the answer is from Clearpost
            return HTMLResponse(
                message("Sign-in refused", "The answer did not come from Clearpost."),
                status_code=400,
            )
        back = pending["next"]
        if "error" in params:
            text = (
                "You chose not to connect Clearpost."
                if params["error"] == "access_denied"
                else f"Clearpost said: {params.get('error_description') or params['error']}"
            )
            session["problem"] = text
            return RedirectResponse(back, status_code=303)
        async with streamco.oauth(session) as oauth:
            try:
                token = await oauth.fetch_token(
                    meta["token_endpoint"],
                    authorization_response=str(request.url),
                    state=pending["state"],
                    code_verifier=pending["verifier"],
                )
            except AuthlibBaseError as exc:
                session["problem"] = f"Clearpost refused the sign-in ({exc})."
                return RedirectResponse(back, status_code=303)
        session["token"] = dict(token)
        session.rotate = True
        try:
            me = await streamco.call(session, "GET", "/v1/partner/me")
            session["profile"] = {"display_name": me.json().get("display_name") or "you"}
        except NotConnected:
            session["problem"] = "Clearpost did not accept the new sign-in."
        return RedirectResponse(back, status_code=303)

    async def share(request: Request) -> Response:
        """Share what I'm watching: a share intent for the user's own Clearpost devices."""
        session = session_of(request)
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), csrf_token(session)):
            return HTMLResponse(message("Refused", "That form did not come from this page."), 403)
        show = CATALOGUE.get(str(form.get("show", "")))
        if show is None:
            return HTMLResponse(message("Not found", "No such show."), status_code=404)
        back = f"/watch/{show.slug}"
        body = {
            "title": f"{show.title} ({show.episode})",
            "url": f"{config.link_base}/watch/{show.slug}",
            "description": show.blurb,
        }
        try:
            r = await streamco.call(session, "POST", "/v1/partner/share-intents", json=body)
        except NotConnected:
            session["problem"] = "Clearpost access was withdrawn; connect again to share."
            return RedirectResponse(back, status_code=303)
        if r.status_code != 201:
            detail = r.json().get("detail", r.text) if r.content else r.reason_phrase
            session["problem"] = f"Clearpost refused the share: {detail}"
            return RedirectResponse(back, status_code=303)
        created = r.json()
        session["notice"] = (
            "Sent to your Clearpost app: open it to choose who gets it (within 24 hours). "
            f"Recorded in Clearpost's public log as entry {created['log_index']}."
        )
        return RedirectResponse(back, status_code=303)

    async def disconnect(request: Request) -> Response:
        """Revoke our tokens at Clearpost (RFC 7009) and forget them."""
        session = session_of(request)
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), csrf_token(session)):
            return HTMLResponse(message("Refused", "That form did not come from this page."), 403)
        token = session.get("token")
        if token and token.get("refresh_token"):
            meta = await streamco.metadata()
            async with session.lock, streamco.oauth() as oauth:
                try:
                    await oauth.revoke_token(
                        meta["revocation_endpoint"],
                        token=token["refresh_token"],
                        token_type_hint="refresh_token",
                    )
                except (AuthlibBaseError, httpx.HTTPError) as exc:
                    log.warning("revocation failed: %s", exc)
        forget(session)
        session["notice"] = "Disconnected from Clearpost."
        return RedirectResponse("/", status_code=303)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/watch/{slug}", watch_page),
            Route("/connect", connect),
            Route("/callback", callback),
            Route("/share", share, methods=["POST"]),
            Route("/disconnect", disconnect, methods=["POST"]),
            Route("/health", health),
        ]
    )
    app.add_middleware(ServerSessions)
    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = Config.from_env()
    print(
        f"StreamCo on http://127.0.0.1:{config.port}  (Clearpost at {config.clearpost_url}, "
        f"client {config.client_id}, redirect URI {config.redirect_uri})",
        file=sys.stderr,
    )
    uvicorn.run(create_app(config), host="127.0.0.1", port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
