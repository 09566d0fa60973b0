"""Conversations: direct (two people) and groups, and their members."""

from __future__ import annotations

from clearpost.core.clock import Clock
from clearpost.core.errors import InvalidInput, NotFound
from clearpost.core.ids import is_user_id, new_conversation_id
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.conversations import ConversationRow as ConversationRow  # shown
from clearpost.storage.sql.conversations import ConversationStore

KINDS = ("direct", "group")


class ConversationService:
    def __init__(
        self,
        store: ConversationStore,
        accounts: AccountStore,
        clock: Clock,
        notifier: Notifier,
        max_members: int,
    ) -> None:
        self.store, self.accounts, self.clock, self.notifier = store, accounts, clock, notifier
        self.max_members = max_members

    async def create(
        self, caller: Caller, kind: str, members: list[str]
    ) -> tuple[ConversationRow, bool]:
        if kind not in KINDS:
            raise InvalidInput("kind must be 'direct' or 'group'", code="invalid_kind")
        others = sorted(set(members) - {caller.user_id})
        for m in others:
            if not is_user_id(m):
                raise InvalidInput(
                    f"{m[:50]!r} is not a user id (like '@alice')", code="invalid_user_id"
                )
        if kind == "direct" and len(others) != 1:
            raise InvalidInput(
                "a direct conversation has exactly one other member", code="invalid_members"
            )
        if len(others) + 1 > self.max_members:
            raise InvalidInput(
                f"a group has at most {self.max_members} members", code="too_many_members"
            )
        missing = set(others) - await self.accounts.existing_users(others)
        if missing:
            raise NotFound(
                f"no such user: {', '.join(sorted(missing))[:200]}", code="user_not_found"
            )
        everyone = sorted({caller.user_id, *others})
        direct_key = "|".join(everyone) if kind == "direct" else None
        conv_id, created = await self.store.create(
            new_conversation_id(), kind, caller.user_id, everyone, direct_key, self.clock.now_ms()
        )
        if created:
            self.notifier.publish(everyone)
        return await self.store.get(conv_id, caller.user_id), created

    async def list(self, caller: Caller) -> list[ConversationRow]:
        return await self.store.list_for(caller.user_id)

    async def get(self, caller: Caller, conversation_id: str) -> ConversationRow:
        return await self.store.get(conversation_id, caller.user_id)

    async def add_member(
        self, caller: Caller, conversation_id: str, user_id: str
    ) -> ConversationRow:
        if not is_user_id(user_id) or not await self.accounts.user_exists(user_id):
            raise NotFound("no such user", code="user_not_found")
        conv = await self.store.get(conversation_id, caller.user_id)
        if len(conv.members) + 1 > self.max_members:
            raise InvalidInput(
                f"a group has at most {self.max_members} members", code="too_many_members"
            )
        await self.store.add_member(conversation_id, caller.user_id, user_id, self.clock.now_ms())
        self.notifier.publish([*conv.members, user_id])
        return await self.store.get(conversation_id, caller.user_id)

    async def remove_member(self, caller: Caller, conversation_id: str, user_id: str) -> None:
        conv = await self.store.get(conversation_id, caller.user_id)
        await self.store.remove_member(conversation_id, caller.user_id, user_id)
        self.notifier.publish(conv.members)

    async def leave(self, caller: Caller, conversation_id: str) -> None:
        await self.remove_member(caller, conversation_id, caller.user_id)
