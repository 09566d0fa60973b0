"""The OAuth 2.0 authorization server: authlib's core with a thin async adapter.

What it enforces: authorization code + PKCE (S256 only, required of every client, at
``/oauth/authorize`` already), exact redirect-URI matching, ``state`` echoed, ``iss`` in
every authorization response (RFC 9207), access tokens for 10 minutes, refresh tokens
that rotate on every use with reuse detection (a spent refresh token presented again
revokes the whole grant), client credentials for partner-level scopes, RFC 7009
revocation, RFC 7662 introspection and RFC 8414 metadata.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import JsonRequest, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter

from clearpost.core.partners.scopes import PARTNER_SCOPES, USER_SCOPES
from clearpost.server.services import oauth_models as m
from clearpost.storage.sql.oauth import CodeRow, NewToken, OAuthStore

ACCESS_TOKEN_SECONDS = 600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 60
ACCESS_PREFIX = "cpo_"
REFRESH_PREFIX = "cpr_"


def ctx() -> m.OAuthContext:
    return m.current.get()


class _Payload(BasicOAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(dict(pairs))
        self._pairs = pairs

    @property
    def datalist(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self._pairs:
            out.setdefault(k, []).append(v)
        return out


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)  # keep case-insensitive lookups
        self._args = parse_qsl(urlsplit(uri).query, keep_blank_values=True)
        self._form = form
        self.payload = _Payload(self._args + form)

    @property
    def args(self) -> dict[str, str]:
        return dict(self._args)

    @property
    def form(self) -> dict[str, str]:
        return dict(self._form)


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256, required of every client at the authorization endpoint already."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
                redirect_uri=redirect_uri,
            )
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: m.Code) -> str:
        return authorization_code.row.challenge

    def get_authorization_code_challenge_method(self, authorization_code: m.Code) -> str:
        return authorization_code.row.challenge_method


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(m.AUTH_METHODS)

    def save_authorization_code(self, code: str, request: Any) -> None:
        c = ctx()
        subject: m.Subject = request.user
        data = request.payload.data
        c.new_code = CodeRow(
            code_hash=m.sha256_hex(code),
            grant_id=subject.grant_id,
            partner_id=request.client.partner_id,
            user_id=subject.user_id,
            redirect_uri=data["redirect_uri"],
            scope=request.scope or "",
            challenge=data["code_challenge"],
            challenge_method=data["code_challenge_method"],
            expires_at=c.now_ms + CODE_SECONDS * 1000,
            used=False,
        )

    def query_authorization_code(self, code: str, client: m.PartnerClient) -> m.Code | None:
        row = ctx().codes.get(code)
        if (
            row is None
            or row.used
            or row.expires_at <= ctx().now_ms
            or row.partner_id != client.partner_id
        ):
            return None
        return m.Code(row)

    def delete_authorization_code(self, authorization_code: m.Code) -> None:
        ctx().consumed_code = authorization_code.row.code_hash

    def authenticate_user(self, authorization_code: m.Code) -> m.Subject:
        return m.Subject(authorization_code.row.user_id, authorization_code.row.grant_id)


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(m.AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> m.Token | None:
        c = ctx()
        row = c.tokens.get(refresh_token)
        if row is None or row.kind != "refresh":
            return None
        if row.used:
            c.reused_refresh = row  # reuse of a rotated token: the whole grant goes
            return None
        token = m.Token(row, c.now_ms)
        return None if token.is_expired() or token.is_revoked() else token

    def authenticate_user(self, refresh_token: m.Token) -> m.Subject | None:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: m.Token) -> None:
        ctx().spent_refresh = refresh_token.row.token_hash


class PartnerCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(m.AUTH_METHODS)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(m.AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> m.Token | None:
        row = ctx().tokens.get(token_string)
        return None if row is None else m.Token(row, ctx().now_ms)

    def revoke_token(self, token: m.Token, request: Any) -> None:
        ctx().revoked.append((token.row.token_hash, token.row.partner_id))


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(m.AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> m.Token | None:
        row = ctx().tokens.get(token_string)
        return None if row is None else m.Token(row, ctx().now_ms)

    def check_permission(self, token: m.Token, client: m.PartnerClient, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: m.Token) -> dict[str, Any]:
        row = token.row
        return {
            "active": True,
            "client_id": row.partner_id,
            "token_type": "Bearer",
            "scope": row.scope,
            "exp": row.expires_at // 1000,
            "iat": row.issued_at // 1000,
            "iss": self.server.issuer,
        }


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class Reply:
    """An HTTP answer from authlib: status, JSON body (or None) and headers. Mutable because
    authlib's RFC 9207 extension rewrites ``location`` to add ``iss``."""

    def __init__(self, status: int, body: Any, headers: list[tuple[str, str]]) -> None:
        self.status, self.body, self.headers = status, body, headers

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"]
        self.headers.append(("Location", value))


class ClearpostAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        super().__init__(scopes_supported=sorted(USER_SCOPES | PARTNER_SCOPES))
        self.issuer = issuer
        self.register_grant(CodeGrant, [RequiredS256(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(PartnerCredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_extension(_Issuer(issuer))
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: ACCESS_PREFIX + secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: REFRESH_PREFIX + secrets.token_urlsafe(32),
                expires_generator=lambda *_: ACCESS_TOKEN_SECONDS,
            ),
        )

    def query_client(self, client_id: str) -> m.PartnerClient | None:
        return ctx().clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        c = ctx()
        subject: m.Subject | None = request.user if isinstance(request.user, m.Subject) else None
        partner_id = request.client.partner_id
        scope = token.get("scope", "")
        common = {
            "grant_id": subject.grant_id if subject else None,
            "partner_id": partner_id,
            "user_id": subject.user_id if subject else None,
            "scope": scope,
            "issued_at": c.now_ms,
        }
        c.new_tokens.append(
            NewToken(
                token_hash=m.sha256_hex(token["access_token"]),
                kind="access",
                expires_at=c.now_ms + ACCESS_TOKEN_SECONDS * 1000,
                **common,
            )
        )
        if "refresh_token" in token:
            c.new_tokens.append(
                NewToken(
                    token_hash=m.sha256_hex(token["refresh_token"]),
                    kind="refresh",
                    expires_at=c.now_ms + REFRESH_TOKEN_SECONDS * 1000,
                    **common,
                )
            )

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def create_json_request(self, request: _Request) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Reply:
        return Reply(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str) -> None:
        super().validate_requested_scope(scope)


def check_scopes_for(grant_type: str, client: m.PartnerClient, scope: str | None) -> None:
    """Scopes must be in the partner's agreement and of the right kind for the grant."""
    wanted = set((scope or "").split())
    kind = PARTNER_SCOPES if grant_type == "client_credentials" else USER_SCOPES
    if not wanted or not wanted <= (kind & set(client.agreement.scopes)):
        raise InvalidScopeError(
            f"request only scopes of this partner's agreement that fit this flow: "
            f"{' '.join(sorted(kind & set(client.agreement.scopes))) or '(none)'}"
        )


def client_id_of(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    """The client id from HTTP Basic auth or the form, before authlib authenticates it."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote(decoded.partition(":")[0])
    return form.get("client_id")


def new_request(
    method: str, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
) -> _Request:
    return _Request(method, uri, headers, form)


__all__ = [
    "ClearpostAuthorizationServer",
    "OAuth2Error",
    "OAuthStore",
    "Reply",
    "check_scopes_for",
    "client_id_of",
    "new_request",
]
