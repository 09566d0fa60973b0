"""OAuth 2.0 state: consent grants, authorization codes, access and refresh tokens, web
sessions. Codes and tokens are stored only as SHA-256 hashes.

Consuming a code or rotating a refresh token is a conditional update (``used = false``),
so two concurrent uses cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.tlog.entries import Committed
from clearpost.storage.db import Database
from clearpost.storage.schema import oauth_codes, oauth_grants, oauth_tokens, web_sessions
from clearpost.storage.sql import tlog


@dataclass(frozen=True, slots=True)
class CodeRow:
    code_hash: str
    grant_id: str
    partner_id: str
    user_id: str
    redirect_uri: str
    scope: str
    challenge: str
    challenge_method: str
    expires_at: int
    used: bool


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_hash: str
    kind: str
    grant_id: str | None
    partner_id: str
    user_id: str | None
    scope: str
    issued_at: int
    expires_at: int
    revoked: bool
    used: bool


@dataclass(frozen=True, slots=True)
class GrantRow:
    grant_id: str
    partner_id: str
    user_id: str
    scopes: str
    created_at: int
    grant_log_index: int
    revoked_at: int | None
    revoke_log_index: int | None
    last_access_at: int | None


@dataclass(frozen=True, slots=True)
class NewToken:
    token_hash: str
    kind: str
    grant_id: str | None
    partner_id: str
    user_id: str | None
    scope: str
    issued_at: int
    expires_at: int


class OAuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def code(self, code_hash: str) -> CodeRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(oauth_codes).where(oauth_codes.c.code_hash == code_hash))
            ).first()
            return CodeRow(*row) if row else None

    async def token(self, token_hash: str) -> TokenRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(oauth_tokens).where(oauth_tokens.c.token_hash == token_hash)
                )
            ).first()
            return TokenRow(*row) if row else None

    async def grant(self, grant_id: str) -> GrantRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(oauth_grants).where(oauth_grants.c.grant_id == grant_id))
            ).first()
            return GrantRow(*row) if row else None

    async def grants_of(self, user_id: str) -> list[GrantRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(oauth_grants)
                .where(oauth_grants.c.user_id == user_id)
                .order_by(oauth_grants.c.created_at)
            )
            return [GrantRow(*r) for r in rows]

    async def consent(
        self, grant: GrantRow, entry: bytes, about: Committed, code: CodeRow, now_ms: int
    ) -> int:
        """Log the grant, store it and its authorization code, in one transaction."""
        async with self.db.write() as conn:
            (index,) = await tlog.append_in(conn, [tlog.PendingEntry.about(entry, about)], now_ms)
            values = {**_as_dict(grant), "grant_log_index": index}
            await conn.execute(oauth_grants.insert().values(**values))
            await conn.execute(oauth_codes.insert().values(**_as_dict(code)))
            return index

    async def redeem_code(self, code_hash: str, now_ms: int, tokens: Sequence[NewToken]) -> bool:
        """Mark the code used and store the tokens; False if it was used, expired or revoked."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(oauth_codes)
                .where(
                    oauth_codes.c.code_hash == code_hash,
                    oauth_codes.c.used.is_(False),
                    oauth_codes.c.expires_at > now_ms,
                )
                .values(used=True)
                .returning(oauth_codes.c.grant_id)
            )
            row = result.first()
            if row is None or not await _grant_live(conn, row[0]):
                await conn.rollback()
                return False
            await _insert_tokens(conn, tokens)
            return True

    async def rotate_refresh(
        self, token_hash: str, now_ms: int, tokens: Sequence[NewToken]
    ) -> bool:
        """Spend a refresh token and store its successors; False if it was already spent."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(oauth_tokens)
                .where(
                    oauth_tokens.c.token_hash == token_hash,
                    oauth_tokens.c.kind == "refresh",
                    oauth_tokens.c.used.is_(False),
                    oauth_tokens.c.revoked.is_(False),
                )
                .values(used=True)
                .returning(oauth_tokens.c.grant_id)
            )
            row = result.first()
            if row is None or not await _grant_live(conn, row[0]):
                await conn.rollback()
                return False
            await _insert_tokens(conn, tokens)
            return True

    async def issue(self, tokens: Sequence[NewToken]) -> None:
        async with self.db.write() as conn:
            await _insert_tokens(conn, tokens)

    async def revoke_token(self, token_hash: str, partner_id: str) -> None:
        """RFC 7009: revoke one token of this partner (a refresh token takes its grant's
        access tokens with it)."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    update(oauth_tokens)
                    .where(
                        oauth_tokens.c.token_hash == token_hash,
                        oauth_tokens.c.partner_id == partner_id,
                    )
                    .values(revoked=True)
                    .returning(oauth_tokens.c.kind, oauth_tokens.c.grant_id)
                )
            ).first()
            if row is not None and row[0] == "refresh" and row[1] is not None:
                await conn.execute(
                    update(oauth_tokens)
                    .where(oauth_tokens.c.grant_id == row[1])
                    .values(revoked=True)
                )

    async def revoke_grant(
        self, grant_id: str, entry: bytes, about: Committed, now_ms: int
    ) -> int | None:
        """Log the revocation, then kill the grant and all its tokens; None if already revoked."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(oauth_grants)
                .where(oauth_grants.c.grant_id == grant_id, oauth_grants.c.revoked_at.is_(None))
                .values(revoked_at=now_ms)
            )
            if result.rowcount == 0:
                await conn.rollback()
                return None
            (index,) = await tlog.append_in(conn, [tlog.PendingEntry.about(entry, about)], now_ms)
            await conn.execute(
                update(oauth_grants)
                .where(oauth_grants.c.grant_id == grant_id)
                .values(revoke_log_index=index)
            )
            await conn.execute(
                update(oauth_tokens).where(oauth_tokens.c.grant_id == grant_id).values(revoked=True)
            )
            await conn.execute(
                update(oauth_codes).where(oauth_codes.c.grant_id == grant_id).values(used=True)
            )
            return index

    async def touch_grant(self, grant_id: str, now_ms: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(oauth_grants)
                .where(oauth_grants.c.grant_id == grant_id)
                .values(last_access_at=now_ms)
            )

    # --- web sessions for the consent page ---

    async def create_session(
        self, session_hash: str, user_id: str, csrf: str, expires_at: int
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                web_sessions.insert().values(
                    session_hash=session_hash, user_id=user_id, csrf=csrf, expires_at=expires_at
                )
            )

    async def end_session(self, session_hash: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                web_sessions.delete().where(web_sessions.c.session_hash == session_hash)
            )

    async def session(self, session_hash: str, now_ms: int) -> tuple[str, str] | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(web_sessions.c.user_id, web_sessions.c.csrf).where(
                        web_sessions.c.session_hash == session_hash,
                        web_sessions.c.expires_at > now_ms,
                    )
                )
            ).first()
            return (row[0], row[1]) if row else None


async def _grant_live(conn: AsyncConnection, grant_id: str | None) -> bool:
    if grant_id is None:
        return True
    row = (
        await conn.execute(
            select(oauth_grants.c.revoked_at).where(oauth_grants.c.grant_id == grant_id)
        )
    ).first()
    return row is not None and row[0] is None


async def _insert_tokens(conn: AsyncConnection, tokens: Sequence[NewToken]) -> None:
    if tokens:
        await conn.execute(
            oauth_tokens.insert(),
            [{**_as_dict(t), "revoked": False, "used": False} for t in tokens],
        )


def _as_dict(row: object) -> dict[str, object]:
    return {name: getattr(row, name) for name in row.__slots__}  # type: ignore[attr-defined]
