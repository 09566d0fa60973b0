"""OAuth 2.0 endpoints and the consent page (authlib core behind a thin ASGI adapter).

The token, revocation and introspection endpoints answer in RFC 6749 form
(``error``/``error_description``) and, on errors, also carry the RFC 9457 problem members
(``type``, ``title``, ``status``, ``detail``, ``code``) so both kinds of client understand.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from clearpost.core.errors import ClearpostError, Unavailable
from clearpost.core.limits import NUL_MESSAGE
from clearpost.core.partners.scopes import SCOPES
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Svc, client_ip
from clearpost.server.http.openapi import ok, problems
from clearpost.server.services.authorize import ConsentView, OAuthPageError
from clearpost.server.services.oauth import Reply
from clearpost.web.pages import esc, render

router = APIRouter(tags=["oauth"])

SESSION_COOKIE = "cp_session"
_HTML = {"text/html": {"schema": {"type": "string"}}}
_OAUTH_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}


def _page_doc(**statuses: str) -> dict[int | str, dict[str, Any]]:
    """HTML pages and redirects, documented by status (``s302="..."``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for key, words in statuses.items():
        status = int(key[1:])
        entry: dict[str, Any] = {"description": words}
        if 300 <= status < 400:
            entry["headers"] = {"Location": {"schema": {"type": "string"}}}
        else:
            entry["content"] = _HTML
        out[status] = entry
    return out


def _form(*required: str, **optional: str) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` request body of string fields."""
    names = [*required, *optional]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": list(required),
                        "properties": {n: {"type": "string"} for n in names},
                    }
                }
            },
        }
    }


def _oauth_doc(model: type[wire.BaseModel] | None) -> dict[int | str, dict[str, Any]]:
    """RFC 6749 answers: the body on success, an ``OAuthError`` on 400 and 401."""
    out: dict[int | str, dict[str, Any]] = {
        400: {"description": "invalid_request, invalid_grant, ...", "content": _OAUTH_JSON},
        401: {"description": "invalid_client", "content": _OAUTH_JSON},
    }
    if model is not None:
        out[200] = {"model": model, "description": "OK"}
    return out


PRE_COOKIE = "cp_pre"


def _page(status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(
        render("message", title=title, heading=title, message=message),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _reply(reply: Reply) -> Response:
    if reply.location:
        return RedirectResponse(
            reply.location, status_code=302, headers={"Cache-Control": "no-store"}
        )
    body: dict[str, Any] = dict(reply.body or {})
    if reply.status >= 400 and "error" in body:
        body.update(
            {
                "type": f"urn:clearpost:problem:oauth_{body['error']}",
                "title": body["error"],
                "status": reply.status,
                "detail": body.get("error_description") or body["error"],
                "code": f"oauth_{body['error']}",
            }
        )
    headers = {k: v for k, v in reply.headers if k.lower() != "content-type"}
    return Response(
        orjson.dumps(body), status_code=reply.status, media_type="application/json", headers=headers
    )


def _uri(request: Request, svc: Svc) -> str:
    """The request URI on the configured public base URL (never the client's Host header)."""
    query = "?" + request.url.query if request.url.query else ""
    return svc.settings.base_url() + request.url.path + query


def _same(sent: str, expected: str) -> bool:
    """Constant-time comparison of a form token; as bytes, because ``compare_digest`` raises
    on a non-ASCII str (a 500 for a ``csrf`` of "é", issue 15)."""
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())


def _cookie(response: Response, svc: Svc, name: str, value: str, max_age: int) -> None:
    """``Secure`` follows the configured public URL, not the scheme the request came in on:
    behind a TLS-terminating proxy the request is plain http (issue 15)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/oauth",
        httponly=True,
        samesite="lax",
        secure=svc.settings.base_url().startswith("https://"),
    )


def _consent_page(request: Request, view: ConsentView, user_id: str, csrf: str) -> HTMLResponse:
    items = "".join(
        f'<li><span class="scope-name">{esc(s)}</span><br>{esc(SCOPES[s].description)}</li>'
        for s in view.scopes
    )
    action = request.url.path + ("?" + request.url.query if request.url.query else "")
    html = render(
        "consent",
        title=f"Connect {view.client.agreement.name}",
        partner=view.client.agreement.name,
        partner_id=view.client.partner_id,
        homepage=view.client.agreement.homepage,
        user=user_id,
        scopes_html=items,
        version=str(view.agreement_version),
        log_index=str(view.agreement_log_index),
        log_end=str(view.agreement_log_index + 1),
        purposes="; ".join(view.client.agreement.purposes),
        retention=view.client.agreement.retention,
        action=action,
        csrf=csrf,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


@router.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    responses=_page_doc(
        s200="The sign-in or consent page",
        s302="Back to the partner's redirect URI with an error (RFC 6749 4.1.2.1)",
        s400="The link is broken (unknown client, bad redirect URI): an error page",
    ),
)
async def authorize(request: Request, svc: Svc) -> Response:
    """The consent page: sign in, then see the partner's scopes in plain words and decide."""
    try:
        result = await svc.oauth.consent_request(_uri(request, svc), request.headers)
    except OAuthPageError as err:
        return _page(400, "This link to Clearpost is broken", f"{err.description} ({err.error})")
    if isinstance(result, Reply):
        return _reply(result)
    session = await svc.oauth.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
        next_url = request.url.path + "?" + request.url.query
        html = render(
            "login",
            title="Sign in",
            partner=result.client.agreement.name,
            error="",
            csrf=pre,
            next=next_url,
        )
        response = HTMLResponse(
            html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
        )
        _cookie(response, svc, PRE_COOKIE, pre, 1800)
        return response
    user_id, csrf = session
    return _consent_page(request, result, user_id, csrf)


@router.post(
    "/oauth/authorize",
    response_class=HTMLResponse,
    openapi_extra=_form("csrf", "decision"),
    responses=_page_doc(
        s302="Back to the partner's redirect URI with the code (or access_denied)",
        s400="No decision, or the link is broken: an error page",
        s401="The sign-in expired: an error page",
        s403="The CSRF token is missing or wrong: an error page",
    ),
)
async def decide(request: Request, svc: Svc) -> Response:
    """The Allow / Deny form. Needs the session and its CSRF token; Allow logs the grant
    before the code is issued."""
    form = await request.form()
    session = await svc.oauth.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return _page(
            401, "Please sign in again", "Your sign-in expired; go back to the app and start over."
        )
    user_id, csrf = session
    sent = str(form.get("csrf", ""))
    if not sent or not _same(sent, csrf):
        return _page(
            403,
            "This form was not sent by Clearpost",
            "The security token is missing or wrong (csrf_failed); nothing was changed.",
        )
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        return _page(400, "No decision", "Choose Allow or Deny.")
    try:
        reply = await svc.oauth.decide(
            _uri(request, svc), request.headers, user_id, decision == "allow"
        )
    except OAuthPageError as err:
        return _page(400, "This link to Clearpost is broken", f"{err.description} ({err.error})")
    return _reply(reply)


@router.post(
    "/oauth/login",
    response_class=HTMLResponse,
    openapi_extra=_form("csrf", "next", "username", "password"),
    responses=_page_doc(
        s303="Signed in: back to the consent page",
        s400="Nowhere to go back to: an error page",
        s401="Wrong username or password: the sign-in page again",
        s403="The CSRF token is missing or wrong: an error page",
    )
    | problems(429),
)
async def login(request: Request, svc: Svc) -> Response:
    svc.login_limiter.hit(client_ip(request))
    form = await request.form()
    pre = request.cookies.get(PRE_COOKIE, "")
    sent = str(form.get("csrf", ""))
    next_url = str(form.get("next", ""))
    if not pre or not _same(sent, pre):
        return _page(
            403,
            "This form was not sent by Clearpost",
            "The security token is missing or wrong (csrf_failed); nothing was changed.",
        )
    if urlsplit(next_url).netloc or not next_url.startswith("/oauth/authorize?"):
        return _page(400, "Nowhere to go back to", "The sign-in link is incomplete.")
    try:
        user_id = await svc.accounts.check_password(
            str(form.get("username", "")), str(form.get("password", ""))
        )
    except Unavailable:
        raise  # not a wrong password: a 503 like every request while the database is down
    except ClearpostError:
        html = render(
            "login",
            title="Sign in",
            partner="An app",
            error="Wrong username or password.",
            csrf=pre,
            next=next_url,
        )
        return HTMLResponse(html, status_code=401, headers={"Cache-Control": "no-store"})
    session, _ = await svc.oauth.start_session(user_id)
    response = RedirectResponse(next_url, status_code=303)
    _cookie(response, svc, SESSION_COOKIE, session, 3600)
    return response


@router.post(
    "/oauth/logout",
    response_class=HTMLResponse,
    openapi_extra=_form("csrf"),
    responses=_page_doc(
        s200="Signed out (or was not signed in): a page that says so",
        s403="The CSRF token is missing or wrong: an error page",
    ),
)
async def logout(request: Request, svc: Svc) -> Response:
    """End the consent-page session (its CSRF token required): the cookie stops working at
    once, here and in every process. Before issue 15 a session could not be ended."""
    form = await request.form()
    cookie = request.cookies.get(SESSION_COOKIE)
    session = await svc.oauth.session(cookie)
    if session is None or cookie is None:
        response = _page(200, "Signed out", "You are not signed in to Clearpost here.")
    elif not _same(str(form.get("csrf", "")), session[1]):
        return _page(
            403,
            "This form was not sent by Clearpost",
            "The security token is missing or wrong (csrf_failed); nothing was changed.",
        )
    else:
        await svc.oauth.end_session(cookie)
        response = _page(200, "Signed out", "You are signed out of Clearpost on this browser.")
    response.delete_cookie(SESSION_COOKIE, path="/oauth")
    return response


_NUL_REPLY = Reply(400, {"error": "invalid_request", "error_description": NUL_MESSAGE}, [])


async def _form_fields(request: Request) -> list[tuple[str, str]] | None:
    """The form's fields; None when a field or the Basic client credentials hold a NUL,
    which PostgreSQL text cannot (the client then gets ``invalid_request``)."""
    form = await request.form()
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    if any("\x00" in k or "\x00" in v for k, v in fields) or _nul_in_basic(request):
        return None
    return fields


async def _endpoint(
    request: Request,
    svc: Svc,
    endpoint: Callable[[str, Mapping[str, str], list[tuple[str, str]]], Awaitable[Reply]],
) -> Response:
    """Answer a token, revocation or introspection request from its form fields."""
    form = await _form_fields(request)
    if form is None:
        return _reply(_NUL_REPLY)
    return _reply(await endpoint(_uri(request, svc), request.headers, form))


def _nul_in_basic(request: Request) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=False)
    except ValueError:
        return False  # authlib refuses it as invalid_client
    return b"\x00" in decoded or b"%00" in decoded  # RFC 6749 2.3.1 form-encodes both parts


@router.post(
    "/oauth/token",
    openapi_extra=_form(
        "grant_type",
        code="",
        redirect_uri="",
        code_verifier="",
        refresh_token="",
        scope="",
        client_id="",
        client_secret="",
    ),
    responses=_oauth_doc(wire.TokenResponse),
)
async def token(request: Request, svc: Svc) -> Response:
    """Authorization code (with PKCE), refresh token (rotating) and client credentials."""
    return await _endpoint(request, svc, svc.oauth.token)


@router.post(
    "/oauth/revoke",
    openapi_extra=_form("token", token_type_hint="", client_id="", client_secret=""),
    responses=_oauth_doc(None)
    | {
        200: {
            "description": "Revoked (or unknown: RFC 7009 2.2); an empty object",
            "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
        }
    },
)
async def revoke(request: Request, svc: Svc) -> Response:
    """RFC 7009 token revocation (for the partner that owns the token)."""
    return await _endpoint(request, svc, svc.oauth.revoke)


@router.post(
    "/oauth/introspect",
    openapi_extra=_form("token", token_type_hint="", client_id="", client_secret=""),
    responses=_oauth_doc(wire.Introspection),
)
async def introspect(request: Request, svc: Svc) -> Response:
    """RFC 7662 token introspection (a partner may introspect only its own tokens)."""
    return await _endpoint(request, svc, svc.oauth.introspect)


@router.get(
    "/.well-known/oauth-authorization-server",
    response_class=JSON,
    responses=ok(wire.ServerMetadata),
)
async def metadata(svc: Svc) -> JSON:
    """RFC 8414 authorization server metadata."""
    return JSON(svc.oauth.metadata())
