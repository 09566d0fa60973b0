"""Deleting an account, by its owner or by an operator, without breaking the log.

In order: every device is removed (each removal is logged, as any device change is), every
live partner consent is revoked (logged), every conversation is left (the other members see
it), and then the account's rows are erased and its commitment salt destroyed in one
transaction. From then on the log entries about the account still verify, but nobody, the
operator included, can tell whose they were: a subject commitment opens only with the salt.
"""

from __future__ import annotations

import contextlib
import secrets

from clearpost.core.errors import NotFound
from clearpost.core.ids import DeviceId, UserId, user_id_for
from clearpost.server.services.accounts import RESERVED_PREFIX, AccountService, Caller
from clearpost.server.services.authorize import OAuthService
from clearpost.server.services.conversations import ConversationService
from clearpost.storage.db import Database
from clearpost.storage.sql.erasure import erase_account


class AccountDeletion:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        conversations: ConversationService,
        oauth: OAuthService,
    ) -> None:
        self.db, self.accounts, self.conversations, self.oauth = db, accounts, conversations, oauth

    async def delete(self, user_id: str) -> str:
        """Delete ``user_id``; returns the pseudonym its sent messages now carry."""
        if not await self.accounts.user_exists(user_id):
            raise NotFound("no such user", code="user_not_found")
        for device in await self.accounts.devices(user_id):
            caller = Caller(UserId(user_id), DeviceId(device.device_id))
            with contextlib.suppress(NotFound):  # removed meanwhile
                await self.accounts.delete_device(caller, device.device_id)
        live = {g.partner_id for g in await self.oauth.apps(user_id) if g.revoked_at is None}
        for partner_id in sorted(live):
            await self.oauth.revoke_app(user_id, partner_id)
        member = Caller(UserId(user_id), DeviceId(""))
        joined: list[str] = []
        cursor: str | None = None
        while True:  # every page first: leaving changes the pages
            page, _, cursor = await self.conversations.list(member, cursor)
            joined.extend(c.conversation_id for c in page)
            if cursor is None:
                break
        for conversation_id in joined:
            with contextlib.suppress(NotFound):
                await self.conversations.leave(member, conversation_id)
        pseudonym = user_id_for(RESERVED_PREFIX + secrets.token_hex(6), self.accounts.server_name)
        if not await erase_account(self.db, user_id, pseudonym):
            raise NotFound("no such user", code="user_not_found")
        self.accounts.forget(None)
        return pseudonym
