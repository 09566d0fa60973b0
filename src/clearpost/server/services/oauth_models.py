"""The objects authlib's synchronous hooks see, and the per-request context they read.

authlib's grant and endpoint hooks are synchronous, while our storage is async. So the
adapter (``oauth.py``) loads everything a request can need *before* calling authlib
(client, code, token rows), authlib's hooks read only this context, and the writes they
ask for are recorded here and carried out afterwards in one transaction, with
conditional updates so that nothing authlib decided can be raced.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

from clearpost.core.partners.agreement import Agreement
from clearpost.storage.sql.oauth import CodeRow, NewToken, TokenRow

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class PartnerClient(ClientMixin):  # type: ignore[misc]
    """A partner as an OAuth client: its redirect URIs and scopes come from its agreement."""

    def __init__(self, agreement: Agreement, secret_hash: str) -> None:
        self.agreement = agreement
        self.secret_hash = secret_hash

    @property
    def partner_id(self) -> str:
        return self.agreement.partner_id

    def get_client_id(self) -> str:
        return self.agreement.partner_id

    def get_default_redirect_uri(self) -> None:
        return None  # every request names its redirect URI, matched exactly

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.agreement.scopes)
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.agreement.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(sha256_hex(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass(frozen=True, slots=True)
class Subject:
    """The user an authorization is about, and the grant it belongs to."""

    user_id: str
    grant_id: str


class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: CodeRow) -> None:
        self.row = row

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class Token(TokenMixin):  # type: ignore[misc]
    def __init__(self, row: TokenRow, now_ms: int) -> None:
        self.row, self.now_ms = row, now_ms

    def check_client(self, client: PartnerClient) -> bool:
        return bool(client.partner_id == self.row.partner_id)

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, (self.row.expires_at - self.now_ms) // 1000)

    def is_expired(self) -> bool:
        return self.row.expires_at <= self.now_ms

    def is_revoked(self) -> bool:
        """Revoked, or a refresh token already rotated (spent): introspection must not call
        a spent refresh token active (issue 15)."""
        return self.row.revoked or self.row.used

    def get_user(self) -> Subject | None:
        if self.row.user_id is None or self.row.grant_id is None:
            return None
        return Subject(self.row.user_id, self.row.grant_id)

    def get_client(self) -> None:
        return None


@dataclass
class OAuthContext:
    """Everything one OAuth request may read, and what it asks to write."""

    now_ms: int
    clients: dict[str, PartnerClient] = field(default_factory=dict)
    codes: dict[str, CodeRow] = field(default_factory=dict)
    tokens: dict[str, TokenRow] = field(default_factory=dict)
    new_code: CodeRow | None = None
    consumed_code: str | None = None
    spent_refresh: str | None = None
    reused_refresh: TokenRow | None = None
    new_tokens: list[NewToken] = field(default_factory=list)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


current: contextvars.ContextVar[OAuthContext] = contextvars.ContextVar("clearpost_oauth")
