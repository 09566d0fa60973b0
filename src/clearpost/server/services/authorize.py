"""OAuth flows around authlib: the consent decision, the token endpoint, revocation,
introspection, and checking partner tokens on the partner API.

Each method loads what authlib's synchronous hooks may need, runs authlib with that
context, then performs the recorded writes. "Log before release": a consent's ``grant``
entry is appended in the same transaction that stores the code, before the redirect
carrying the code is sent; a revocation's entry in the same transaction that kills the
grant's tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from clearpost.core.clock import Clock
from clearpost.core.errors import Forbidden, NotFound, Unauthenticated
from clearpost.core.partners.scopes import SCOPES
from clearpost.core.tlog.entries import encode_entry, grant_entry, revocation_entry
from clearpost.server.services import oauth_models as m
from clearpost.server.services.oauth import (
    ClearpostAuthorizationServer,
    OAuth2Error,
    Reply,
    check_scopes_for,
    client_id_of,
    new_request,
)
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.tlog import LogService
from clearpost.storage.sql.oauth import CodeRow, GrantRow, OAuthStore

SESSION_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class ConsentView:
    """What the consent page shows."""

    client: m.PartnerClient
    scopes: list[str]
    agreement_version: int
    agreement_log_index: int


class OAuthPageError(Exception):
    """An authorization request too broken to redirect back (unknown client, bad redirect URI)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


TOUCH_EVERY_MS = 60_000
"""How stale a grant's recorded last access may get (per server process)."""
TOUCHED_KEPT = 10_000
"""Grants remembered for that; the memory is dropped when it fills."""


@dataclass(frozen=True, slots=True)
class PartnerAccess:
    """A checked partner access token."""

    partner_id: str
    user_id: str | None
    grant_id: str | None
    scopes: frozenset[str]


class OAuthService:
    def __init__(
        self,
        issuer: str,
        store: OAuthStore,
        partners: PartnerService,
        log: LogService,
        clock: Clock,
    ) -> None:
        self.server = ClearpostAuthorizationServer(issuer)
        self.issuer, self.store, self.partners, self.log, self.clock = (
            issuer,
            store,
            partners,
            log,
            clock,
        )
        self.on_logged: Callable[[], None] | None = None
        self.user_suspended: Callable[[str], Awaitable[bool]] | None = None
        """Whether an account is suspended (its partners' tokens then stop working)."""
        self._touched: dict[str, int] = {}  # grant id -> when its last access was written

    # --- the authorization endpoint ---

    async def _context_for(self, client_id: str | None) -> m.OAuthContext:
        c = m.OAuthContext(now_ms=self.clock.now_ms())
        if client_id:
            client = await self.partners.client(client_id)
            if client is not None:
                c.clients[client_id] = client
        return c

    def _grant(
        self, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]], c: m.OAuthContext
    ) -> Any:
        request = new_request("GET", uri, headers, form)
        token = m.current.set(c)
        try:
            grant = self.server.get_consent_grant(request, end_user=None)
            check_scopes_for("authorization_code", grant.client, grant.request.payload.scope)
            return grant
        finally:
            m.current.reset(token)

    async def consent_request(self, uri: str, headers: Mapping[str, str]) -> ConsentView | Reply:
        """Validate an authorization request: a view for the consent page, or an error
        redirect to the client; raises OAuthPageError when it cannot safely redirect."""
        query = dict(new_request("GET", uri, headers, []).args)
        c = await self._context_for(query.get("client_id"))
        try:
            grant = self._grant(uri, headers, [], c)
        except OAuth2Error as error:
            return self._error(error)
        _, version = await self.partners.agreement(grant.client.partner_id)
        return ConsentView(
            grant.client,
            sorted(grant.request.payload.scope.split()),
            version.version,
            version.log_index,
        )

    def _error(self, error: OAuth2Error) -> Reply:
        if getattr(error, "redirect_uri", None):
            error.state = getattr(error, "state", None)
            status, body, headers = error(None)
            location = next((v for k, v in headers if k.lower() == "location"), None)
            if location:
                sep = "&" if "?" in location else "?"
                headers = [(k, v) for k, v in headers if k.lower() != "location"]
                headers.append(("Location", f"{location}{sep}iss={quote(self.issuer, safe='')}"))
            return Reply(status, body, headers)
        raise OAuthPageError(error.error, error.description or error.error)

    async def decide(
        self, uri: str, headers: Mapping[str, str], user_id: str, allow: bool
    ) -> Reply:
        """The user's answer on the consent page: a redirect carrying a code or access_denied."""
        query = dict(new_request("GET", uri, headers, []).args)
        c = await self._context_for(query.get("client_id"))
        try:
            grant = self._grant(uri, headers, [], c)
        except OAuth2Error as error:
            return self._error(error)
        request = grant.request
        token = m.current.set(c)
        try:
            subject = m.Subject(user_id, "g_" + secrets.token_urlsafe(16)) if allow else None
            reply: Reply = self.server.create_authorization_response(
                request, grant_user=subject, grant=grant
            )
        finally:
            m.current.reset(token)
        if subject is None or c.new_code is None:
            return reply
        partner_id = grant.client.partner_id
        scopes = sorted(c.new_code.scope.split())
        about = await self.log.commit(user_id)
        row = GrantRow(
            subject.grant_id, partner_id, user_id, " ".join(scopes), c.now_ms, 0, None, None, None
        )
        entry = encode_entry(grant_entry(partner_id, scopes, about.subject, c.now_ms))
        await self.store.consent(row, entry, about, c.new_code, c.now_ms)
        self._logged()
        return reply

    def _logged(self) -> None:
        if self.on_logged is not None:
            self.on_logged()

    # --- the token, revocation and introspection endpoints ---

    async def token(
        self, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> Reply:
        if urlsplit(uri).query:
            return _query_refused()
        fields = dict(form)
        c = await self._context_for(client_id_of(headers, fields))
        code = fields.get("code")
        code_row = None
        if code:
            code_row = row = await self.store.code(m.sha256_hex(code))
            if row is not None:
                c.codes[code] = row
        refresh = fields.get("refresh_token")
        if refresh:
            trow = await self.store.token(m.sha256_hex(refresh))
            if trow is not None:
                c.tokens[refresh] = trow
        request = new_request("POST", uri, headers, form)
        token = m.current.set(c)
        try:
            client = c.clients.get(client_id_of(headers, fields) or "")
            grant_type = fields.get("grant_type", "")
            if client is not None and grant_type == "client_credentials":
                try:
                    check_scopes_for(grant_type, client, fields.get("scope"))
                except OAuth2Error as error:
                    return self.server.handle_error_response(request, error)  # type: ignore[no-any-return]
            reply: Reply = self.server.create_token_response(request)
        finally:
            m.current.reset(token)
        if c.reused_refresh is not None:
            await self._revoke_grant(c.reused_refresh.grant_id, "refresh_token_reused")
            return reply
        if code_row is not None and code_row.used and _code_refused(reply, client, code_row):
            # RFC 6749 §4.1.2: a code used twice revokes the tokens it was exchanged for
            await self._revoke_grant(code_row.grant_id, "code_reused")
            return reply
        if reply.status != 200:
            return reply
        ok = True
        if c.consumed_code is not None:
            ok = await self.store.redeem_code(c.consumed_code, c.now_ms, c.new_tokens)
            if not ok and code_row is not None:  # lost a race with another use of the code
                await self._revoke_grant(code_row.grant_id, "code_reused")
        elif c.spent_refresh is not None:
            ok = await self.store.rotate_refresh(c.spent_refresh, c.now_ms, c.new_tokens)
            if not ok:  # lost a race with another use of the same refresh token: reuse
                await self._revoke_grant(c.tokens[refresh or ""].grant_id, "refresh_token_reused")
        else:
            await self.store.issue(c.new_tokens)
        if not ok:
            return Reply(
                400,
                {"error": "invalid_grant", "error_description": "the grant is no longer valid"},
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            )
        return reply

    async def _token_endpoint(
        self, name: str, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> tuple[Reply, m.OAuthContext]:
        if urlsplit(uri).query:
            return _query_refused(), m.OAuthContext(now_ms=0)
        fields = dict(form)
        c = await self._context_for(client_id_of(headers, fields))
        value = fields.get("token")
        if value:
            row = await self.store.token(m.sha256_hex(value))
            if row is not None:
                c.tokens[value] = row
        token = m.current.set(c)
        try:
            reply: Reply = self.server.create_endpoint_response(
                name, new_request("POST", uri, headers, form)
            )
        finally:
            m.current.reset(token)
        return reply, c

    async def revoke(
        self, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> Reply:
        reply, c = await self._token_endpoint("revocation", uri, headers, form)
        for token_hash, partner_id in c.revoked:
            row = next((t for t in c.tokens.values() if t.token_hash == token_hash), None)
            if row is not None and row.kind == "refresh" and row.grant_id is not None:
                # the app disconnects itself: the consent ends, and the log says so
                await self._revoke_grant(row.grant_id, "partner_revoked")
            else:
                await self.store.revoke_token(token_hash, partner_id)
        return reply

    async def introspect(
        self, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> Reply:
        reply, _ = await self._token_endpoint("introspection", uri, headers, form)
        return reply

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        base = self.issuer.rstrip("/")
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "scopes_supported": sorted(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(m.GRANT_TYPES),
            "token_endpoint_auth_methods_supported": list(m.AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(m.AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": list(m.AUTH_METHODS),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "service_documentation": f"{base}/docs",
        }

    # --- the partner API side ---

    async def check_partner_token(self, token: str, scope: str) -> PartnerAccess:
        """A live partner access token carrying ``scope``; raises Unauthenticated/Forbidden."""
        row = await self.store.token(m.sha256_hex(token))
        now = self.clock.now_ms()
        if row is None or row.kind != "access" or row.revoked or row.expires_at <= now:
            raise Unauthenticated(
                "the partner access token is not valid (expired or revoked)", code="invalid_token"
            )
        if row.grant_id is not None:
            grant = await self.store.grant(row.grant_id)
            if grant is None or grant.revoked_at is not None:
                raise Unauthenticated("the user revoked this app's access", code="invalid_token")
        if await self.partners.is_suspended(row.partner_id):
            raise Forbidden("this partner is suspended by the operator", code="partner_suspended")
        suspended = self.user_suspended
        if row.user_id is not None and suspended is not None and await suspended(row.user_id):
            raise Forbidden(
                "this account is suspended by the server's operator", code="account_suspended"
            )
        scopes = frozenset(row.scope.split())
        if scope not in scopes:
            raise Forbidden(f"this endpoint needs the {scope!r} scope", code="insufficient_scope")
        return PartnerAccess(row.partner_id, row.user_id, row.grant_id, scopes)

    async def touch(self, access: PartnerAccess) -> None:
        """Record the grant's last access (``me/apps`` shows it), at most once per
        ``TOUCH_EVERY_MS`` per grant in this process: a partner making many calls costs one
        small write a minute, not one per call."""
        if access.grant_id is None:
            return
        now = self.clock.now_ms()
        last = self._touched.get(access.grant_id)
        if last is not None and now - last < TOUCH_EVERY_MS:
            return
        if len(self._touched) >= TOUCHED_KEPT:
            self._touched.clear()
        self._touched[access.grant_id] = now
        await self.store.touch_grant(access.grant_id, now)

    # --- the user's view ---

    async def apps(self, user_id: str) -> list[GrantRow]:
        return await self.store.grants_of(user_id)

    async def revoke_app(self, user_id: str, partner_id: str) -> list[int]:
        """Revoke every live grant of ``partner_id`` for this user; returns the log indexes."""
        live = [
            g
            for g in await self.store.grants_of(user_id)
            if g.partner_id == partner_id and g.revoked_at is None
        ]
        if not live:
            raise NotFound("you have not connected that app", code="app_not_connected")
        indexes = []
        for g in live:
            index = await self._revoke_grant(g.grant_id, "user")
            if index is not None:
                indexes.append(index)
        return indexes

    async def _revoke_grant(self, grant_id: str | None, reason: str) -> int | None:
        if grant_id is None:
            return None
        grant = await self.store.grant(grant_id)
        if grant is None:
            return None
        about = await self.log.commit(grant.user_id)
        now = self.clock.now_ms()
        entry = revocation_entry(grant.partner_id, grant.scopes.split(), about.subject, now)
        entry["reason"] = reason
        index = await self.store.revoke_grant(grant_id, encode_entry(entry), about, now)
        self._logged()
        return index

    # --- web sessions for the consent page ---

    async def start_session(self, user_id: str) -> tuple[str, str]:
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        await self.store.create_session(
            m.sha256_hex(session), user_id, csrf, self.clock.now_ms() + SESSION_SECONDS * 1000
        )
        return session, csrf

    async def end_session(self, session: str) -> None:
        """Sign out of the consent pages: the session cookie stops working at once."""
        await self.store.end_session(m.sha256_hex(session))

    async def session(self, session: str | None) -> tuple[str, str] | None:
        if not session:
            return None
        return await self.store.session(m.sha256_hex(session), self.clock.now_ms())


def _query_refused() -> Reply:
    """RFC 6749 §3.2: token endpoint parameters come in the request body only. A query
    string was read as parameters too, where the scope check did not look (issue 15)."""
    return Reply(
        400,
        {
            "error": "invalid_request",
            "error_description": "send the parameters in the form body, not the query string",
        },
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
    )


def _code_refused(reply: Reply, client: m.PartnerClient | None, row: CodeRow) -> bool:
    """The code's own partner, authenticated, was told the code is no longer valid."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    return error == "invalid_grant" and client is not None and client.partner_id == row.partner_id
