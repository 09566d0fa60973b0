"""Conversations: direct (two people) and groups, and their members."""

from __future__ import annotations

from collections.abc import Sequence

from clearpost.core.clock import Clock
from clearpost.core.errors import Forbidden, InvalidInput, NotFound
from clearpost.core.ids import new_conversation_id, parse_user_id
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.conversations import ConversationRow as ConversationRow  # shown
from clearpost.storage.sql.conversations import ConversationStore

KINDS = ("direct", "group")
MAX_PAGE = 500


def _position(cursor: str) -> tuple[int, str]:
    created, _, conversation_id = cursor.partition(".")
    if not created.isascii() or not created.isdigit() or len(created) > 18 or not conversation_id:
        raise InvalidInput("not a conversation list cursor", code="invalid_cursor")
    return int(created), conversation_id[:64]


class ConversationService:
    def __init__(
        self,
        store: ConversationStore,
        accounts: AccountStore,
        clock: Clock,
        notifier: Notifier,
        max_members: int,
        server_name: str = "clearpost.localhost",
    ) -> None:
        self.store, self.accounts, self.clock, self.notifier = store, accounts, clock, notifier
        self.max_members, self.server_name = max_members, server_name

    async def create(
        self, caller: Caller, kind: str, members: list[str]
    ) -> tuple[ConversationRow, bool]:
        if kind not in KINDS:
            raise InvalidInput("kind must be 'direct' or 'group'", code="invalid_kind")
        others = sorted(set(members) - {caller.user_id})
        for m in others:
            parse_user_id(m, self.server_name)  # malformed or another server's: 422
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
        if kind == "group":
            await self._may_add(others)
        everyone = sorted({caller.user_id, *others})
        direct_key = "|".join(everyone) if kind == "direct" else None
        conv_id, created = await self.store.create(
            new_conversation_id(), kind, caller.user_id, everyone, direct_key, self.clock.now_ms()
        )
        if created:
            self.notifier.publish(everyone)
        return await self.store.get(conv_id, caller.user_id), created

    async def list(
        self, caller: Caller, after: str | None = None, limit: int = MAX_PAGE
    ) -> tuple[list[ConversationRow], int, str | None]:
        """A page of the caller's conversations, oldest first: (the page, how many there are
        in all, the cursor of the next page or None). Issue 15: the list was unpaged, and
        2,000 groups made around one person made it 358 KB."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is 1 to {MAX_PAGE}", code="invalid_parameter")
        position = None if after is None else _position(after)
        rows = await self.store.list_for(caller.user_id, position, limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        total = await self.store.count_for(caller.user_id)
        last = rows[-1] if rows and more else None
        return rows, total, None if last is None else f"{last.created_at}.{last.conversation_id}"

    async def get(self, caller: Caller, conversation_id: str) -> ConversationRow:
        return await self.store.get(conversation_id, caller.user_id)

    async def add_member(
        self, caller: Caller, conversation_id: str, user_id: str
    ) -> ConversationRow:
        parse_user_id(user_id, self.server_name)
        if not await self.accounts.user_exists(user_id):
            raise NotFound("no such user", code="user_not_found")
        conv = await self.store.get(conversation_id, caller.user_id)
        if user_id != caller.user_id:
            await self._may_add([user_id])
        if len(conv.members) + 1 > self.max_members:
            raise InvalidInput(
                f"a group has at most {self.max_members} members", code="too_many_members"
            )
        await self.store.add_member(conversation_id, caller.user_id, user_id, self.clock.now_ms())
        self.notifier.publish([*conv.members, user_id])
        return await self.store.get(conversation_id, caller.user_id)

    async def _may_add(self, user_ids: Sequence[str]) -> None:
        """Issue 15: anyone could add anyone to a group. A person who chose "nobody"
        (``PUT /v1/me/settings``) is added to no group by anyone else."""
        refusing = await self.accounts.refusing_group_adds(list(user_ids))
        if refusing:
            raise Forbidden(
                f"{', '.join(sorted(refusing))[:200]} lets nobody add them to groups",
                code="group_adds_refused",
            )

    async def remove_member(self, caller: Caller, conversation_id: str, user_id: str) -> None:
        if user_id != caller.user_id:
            parse_user_id(user_id, self.server_name)
        conv = await self.store.get(conversation_id, caller.user_id)
        await self.store.remove_member(conversation_id, caller.user_id, user_id)
        self.notifier.publish(conv.members)

    async def leave(self, caller: Caller, conversation_id: str) -> None:
        await self.remove_member(caller, conversation_id, caller.user_id)
