"""The SDK facade: one ``Client`` per device.

    async with httpx.AsyncClient(base_url="http://127.0.0.1:8448") as http:
        alice = await Client.register(http, "alice", "password", store_path="alice.db",
                                      passphrase="store passphrase")
        conv = await alice.direct("@bob:clearpost.localhost")  # or "@bob": same server
        await alice.send(conv, "hello")
        async for event in alice.listen():
            ...
        await alice.close()

The HTTP client is injected and stays the caller's to close: the same code runs against
a server process or against the app in-process (``httpx.ASGITransport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import httpx

from clearpost.client import formats, transparency
from clearpost.client.content import Content, Text
from clearpost.client.crypto import Crypto
from clearpost.client.directory import check_complete
from clearpost.client.errors import ClientError, ShareError, StoreError
from clearpost.client.model import (
    ConnectedApp,
    Event,
    InboxEntry,
    KeyProblem,
    Message,
    Sent,
    Shared,
    ShareIntent,
    Stats,
)
from clearpost.client.shares import send_share
from clearpost.client.store import DeviceStore, KdfParams, Login
from clearpost.client.sync import Syncer
from clearpost.client.transparency import LogEntry, VerifiedLog
from clearpost.client.transport import Transport
from clearpost.core.clock import Clock, SystemClock

log = logging.getLogger("clearpost.client")

HISTORY_PAGE = 500


class Client:
    def __init__(
        self,
        http: httpx.AsyncClient,
        store: DeviceStore,
        transport: Transport,
        login: Login,
        clock: Clock,
        stream: bool | None,
    ) -> None:
        self.http, self.store, self.transport, self.login_info = http, store, transport, login
        self.clock = clock
        self.crypto = Crypto(store, transport, clock, login.user_id, login.device_id)
        self.syncer = Syncer(self.crypto)
        self.syncer.monitor = self.crypto.directory.at_sync  # issue 17: self-monitoring
        self._stream = stream
        self._listening = False
        self._pending: dict[str, tuple[str, dict[str, Any], str, int, Content]] = {}
        self._partner_names: dict[str, str] | None = None

    # -- getting a client -----------------------------------------------------------------

    @classmethod
    async def register(
        cls,
        http: httpx.AsyncClient,
        username: str,
        password: str,
        *,
        store_path: str | Path,
        passphrase: str,
        device_name: str | None = None,
        kdf: KdfParams | None = None,
        clock: Clock | None = None,
        stream: bool | None = None,
        invite: str | None = None,
    ) -> Client:
        """Create an account (with ``invite`` on an invite-only server), then log in as
        this device (see ``login``)."""
        await Transport(http).register(username, password, invite)
        return await cls.login(
            http,
            username,
            password,
            store_path=store_path,
            passphrase=passphrase,
            device_name=device_name,
            kdf=kdf,
            clock=clock,
            stream=stream,
        )

    @classmethod
    async def login(
        cls,
        http: httpx.AsyncClient,
        username: str,
        password: str,
        *,
        store_path: str | Path,
        passphrase: str,
        device_name: str | None = None,
        kdf: KdfParams | None = None,
        clock: Clock | None = None,
        stream: bool | None = None,
    ) -> Client:
        """Log in as a new device with a new store: create its keys, publish them, sync once.
        ``username`` may also be given as the user id (``@alice:server``)."""
        if username.startswith("@"):
            username = username[1:].partition(":")[0]
        store = DeviceStore.create(store_path, passphrase, kdf)
        transport = Transport(http)
        try:
            result = await transport.login(username, password, device_name)
        except BaseException:
            store.close()
            _remove(Path(store_path))
            raise
        transport.token = result.access_token
        login = Login(str(http.base_url), result.user_id, result.device_id, result.access_token)
        store.set_login(login)
        store.commit()
        client = cls(http, store, transport, login, clock or SystemClock(), stream)
        await client._ensure_published()
        await client.sync()
        return client

    @classmethod
    async def open(
        cls,
        http: httpx.AsyncClient,
        *,
        store_path: str | Path,
        passphrase: str,
        clock: Clock | None = None,
        stream: bool | None = None,
    ) -> Client:
        """Open an existing device store (``WrongPassphrase`` if the passphrase is wrong)."""
        return await cls.from_store(
            http, DeviceStore.open(store_path, passphrase), clock=clock, stream=stream
        )

    @classmethod
    async def from_store(
        cls,
        http: httpx.AsyncClient,
        store: DeviceStore,
        *,
        clock: Clock | None = None,
        stream: bool | None = None,
    ) -> Client:
        """A client over a store already opened (the client closes it)."""
        login = store.login
        if login is None:
            store.close()
            raise StoreError("this device store holds no login", code="not_logged_in")
        client = cls(
            http,
            store,
            Transport(http, token=login.access_token),
            login,
            clock or SystemClock(),
            stream,
        )
        await client._ensure_published()
        return client

    async def _ensure_published(self) -> None:
        if self.store.get_meta("published") == b"1":
            return
        count = await self.crypto.olm.publish_identity()
        await self.crypto.olm.maintain_keys(count, False, force_fallback=True)
        await self.crypto.devices.refresh(self.user_id)
        self.store.set_meta("published", b"1")
        self.crypto.commit()

    async def close(self) -> None:
        """Save everything and release the store. The HTTP client stays open."""
        self.crypto.commit(closing=True)
        self.store.close()

    async def logout(self) -> None:
        """End this device on the server (its keys and token stop working) and close."""
        await self.transport.logout()
        await self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def user_id(self) -> str:
        return self.login_info.user_id

    @property
    def device_id(self) -> str:
        return self.login_info.device_id

    @property
    def server_name(self) -> str:
        """The server part of this device's user id (``clearpost.localhost`` by default)."""
        return formats.server_name_of(self.user_id)

    def qualify(self, user: str) -> str:
        """A full user id: ``@bob`` (or ``bob``) is ``@bob:<this server's name>``; an id
        with a server part is returned as it is (another server's is refused by ours)."""
        if ":" in user:
            return user
        return f"@{user.removeprefix('@')}:{self.server_name}"

    @property
    def stats(self) -> Stats:
        return self.crypto.stats

    def key_problems(self, limit: int = 50) -> list[KeyProblem]:
        """Key events from other devices that were refused, newest first (see
        ``KeyProblem``): what a person needs to understand a message still waiting."""
        rows = self.store.query(
            "SELECT sender, sender_device, event_type, reason, code, session_id, "
            "conversation_id, at_ms FROM key_problems ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [KeyProblem(*r) for r in rows]

    # -- devices and conversations --------------------------------------------------------

    async def devices(self) -> list[dict[str, Any]]:
        """This user's devices, each with whether its published keys verified."""
        devices = await self.transport.my_devices()
        await self.crypto.devices.refresh(self.user_id)
        verified = self.crypto.devices.known(self.user_id)
        return [
            {
                **d,
                "verified": d["device_id"] in verified,
                "this_device": d["device_id"] == self.device_id,
            }
            for d in devices
        ]

    async def direct(self, user_id: str) -> str:
        """The direct conversation with ``user_id`` (created on first use)."""
        conv = await self.transport.create_conversation("direct", [self.qualify(user_id)])
        self.store.save_conversation(conv)
        return str(conv["conversation_id"])

    async def new_group(self, members: list[str]) -> str:
        conv = await self.transport.create_conversation("group", [self.qualify(m) for m in members])
        self.store.save_conversation(conv)
        return str(conv["conversation_id"])

    async def add_member(self, conversation_id: str, user_id: str) -> None:
        conv = await self.transport.add_member(conversation_id, self.qualify(user_id))
        self.store.save_conversation(conv)
        self.crypto.conversation_changed(conversation_id)

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        await self.transport.remove_member(conversation_id, self.qualify(user_id))
        self.crypto.conversation_changed(conversation_id)

    async def members(self, conversation_id: str) -> list[str]:
        """The conversation's members, as the server last said (``conversation_not_found``
        when you are not one)."""
        return list((await self.crypto.conversation(conversation_id))["members"])

    async def leave(self, conversation_id: str) -> None:
        await self.transport.leave(conversation_id)
        self.store.forget_conversation(conversation_id)

    async def inbox(self) -> list[InboxEntry]:
        """Your conversations with how many messages from others you have not read."""
        out = []
        for conv in await self.transport.conversations():
            self.store.save_conversation(conv)
            local = self.store.conversation(conv["conversation_id"]) or {"read_seq": 0}
            base = max(int(local["read_seq"]), int(conv["joined_from_seq"]) - 1)
            last = int(conv["last_seq"])
            own = self.crypto.cache.count_from(conv["conversation_id"], base, self.user_id)
            out.append(
                InboxEntry(
                    conv["conversation_id"],
                    conv["kind"],
                    tuple(conv["members"]),
                    last,
                    max(0, last - base - own),
                )
            )
        self.store.commit()
        return out

    # -- sending --------------------------------------------------------------------------

    async def send(
        self, conversation_id: str, content: Content | str, *, txn_id: str | None = None
    ) -> Sent:
        """Encrypt and send. Safe to retry with the same ``txn_id``: the server stores one copy,
        and a retry after a failure re-sends the same ciphertext."""
        if isinstance(content, str):
            content = Text(content)
        if not self._listening:
            await self.sync()  # learn membership and device changes before encrypting
        txn_id = txn_id or "m" + secrets.token_urlsafe(16)
        pending = self._pending.get(txn_id)
        if pending is None or pending[0] != conversation_id:
            envelope, session_id, index = await self.crypto.encrypt(conversation_id, content)
            pending = (conversation_id, envelope, session_id, index, content)
            self._pending[txn_id] = pending
        _, envelope, session_id, index, content = pending
        result = await self.transport.send_message(conversation_id, txn_id, envelope)
        del self._pending[txn_id]
        self.crypto.record_sent(
            session_id,
            index,
            content,
            int(result["seq"]),
            int(result["sent_at"]),
            conversation_id,
        )
        return Sent(conversation_id, int(result["seq"]), int(result["sent_at"]), session_id)

    async def share_history(self, conversation_id: str, user_id: str) -> int:
        """On purpose: give ``user_id`` the keys to our earlier messages in a conversation."""
        return await self.crypto.keys.share_history(conversation_id, self.qualify(user_id))

    # -- receiving ------------------------------------------------------------------------

    async def sync(self, timeout_ms: int = 0) -> list[Event]:
        """One sync: apply everything new and return it as events."""
        return await self.syncer.once(timeout_ms)

    async def listen(
        self, *, stream: bool | None = None, timeout_ms: int = 25_000
    ) -> AsyncGenerator[Event, None]:
        """Events as they happen: over the WebSocket stream when the server offers it
        (``stream=None`` tries it and falls back to long-polling), reconnecting with this
        device's cursor when the connection drops, after a back-off (0.5 s doubling to
        30 s, and at least the server's ``retry_after`` when it closed the stream with
        1013 because its database is down). Ends only by raising (logged out, bad
        cursor) or being closed."""
        use_stream = self._stream if stream is None else stream
        self._listening = True
        delay = 0.5
        try:
            while use_stream is not False:
                try:
                    async for event in self.syncer.stream():
                        delay = 0.5
                        yield event
                except ClientError as exc:
                    if exc.code == "stream_unavailable" and not use_stream:
                        log.info("no WebSocket stream (%s); long-polling", exc.message)
                        break
                    if exc.code not in ("stream_closed", "stream_unavailable"):
                        raise
                    # the server's hint (a 1013 close while its database is down) sets the
                    # least wait; jitter keeps many clients from reconnecting in step
                    wait = max(delay, float(exc.extra.get("retry_after", 0.0)))
                    wait *= 1 + random.random() / 4
                    log.warning("%s; reconnecting in %.1fs", exc.message, wait)
                    await asyncio.sleep(wait)
                    delay = min(delay * 2, 30.0)
            async for event in self.syncer.long_poll(timeout_ms):
                yield event
        finally:
            self._listening = False

    async def history(self, conversation_id: str, limit: int = 50) -> list[Message]:
        """The last ``limit`` messages you may see, oldest first, decrypted where possible.
        Marks them read, and asks for the keys of those that cannot be decrypted yet."""
        if not self._listening:
            await self.sync()  # room keys that arrived meanwhile
        self.crypto.conversation_changed(conversation_id)
        conv = await self.crypto.conversation(conversation_id)
        after = max(int(conv["joined_from_seq"]) - 1, int(conv["last_seq"]) - limit, 0)
        out: list[Message] = []
        while True:
            page = await self.transport.messages(conversation_id, after, min(limit, HISTORY_PAGE))
            for raw in page["messages"]:
                msg, _ = self.crypto.receive(raw)
                out.append(msg)
            if page.get("next_after") is None or not page["messages"]:
                break
            after = int(page["next_after"])
        if out:
            self.store.mark_read(conversation_id, out[-1].seq)
        with contextlib.suppress(ClientError):
            await self.crypto.keys.send_requests()
        self.crypto.commit()
        return out[-limit:]

    async def decrypt(self, raw: dict[str, Any]) -> Message:
        """Decrypt one wire message obtained elsewhere (as returned by the messages API)."""
        msg, _ = self.crypto.receive(raw)
        with contextlib.suppress(ClientError):
            await self.crypto.keys.send_requests()
        self.crypto.commit()
        return msg

    def cached_history(self, conversation_id: str, limit: int = 50) -> list[Message]:
        """What this device has already decrypted, without asking the server."""
        return self.crypto.cache.history(conversation_id)[-limit:]

    # -- partner apps: share intents, connected apps, the log about you -------------------

    async def partner_names(self) -> dict[str, str]:
        """Partner id -> display name, from the public agreements (fetched once)."""
        if self._partner_names is None:
            agreements = await self.transport.agreements()
            self._partner_names = {
                str(p["partner_id"]): str(p.get("name") or p["partner_id"]) for p in agreements
            }
        return self._partner_names

    async def share_intents(self) -> list[ShareIntent]:
        """Share suggestions from your apps that you have not sent yet (they expire after
        24 hours). Only your own devices ever see them."""
        names = await self.partner_names()
        return [
            ShareIntent.from_json(d, names.get(str(d.get("partner"))))
            for d in await self.transport.share_intents()
        ]

    async def share_intent(self, intent_id: str) -> ShareIntent:
        """One pending intent by its id, or by a prefix of it that names only one."""
        pending = await self.share_intents()
        found = [i for i in pending if i.intent_id == intent_id] or [
            i for i in pending if i.intent_id.startswith(intent_id)
        ]
        if len(found) == 1:
            return found[0]
        if found:
            raise ShareError(
                f"{intent_id!r} names {len(found)} pending share intents; give more of the id",
                code="intent_ambiguous",
            )
        raise ShareError(
            f"no pending share intent {intent_id!r}: it was sent already, it expired, "
            "or it is not yours",
            code="intent_not_found",
        )

    async def share(
        self,
        intent: ShareIntent | str,
        *,
        to: Sequence[str] = (),
        conversations: Sequence[str] = (),
    ) -> Shared:
        """Send a share intent as an end-to-end encrypted card to users (``to``: their
        direct conversations) and ``conversations``, then tell the server only how many
        people received it. Safe to repeat after a failure: no conversation gets it twice."""
        return await send_share(self, intent, [self.qualify(u) for u in to], conversations)

    async def complete_share_intent(self, intent_id: str, recipients: int) -> None:
        """Tell the server how many people a share reached (``share`` does it for you)."""
        await self.transport.complete_share_intent(intent_id, recipients)

    async def apps(self) -> list[ConnectedApp]:
        """Partner apps you connected, including revoked ones (``connected`` is False)."""
        names = await self.partner_names()
        return [
            ConnectedApp.from_json(d, names.get(str(d.get("partner_id"))))
            for d in await self.transport.apps()
        ]

    async def revoke_app(self, partner_id: str) -> list[int]:
        """Withdraw your consent: logged first, then the app's tokens stop working at once.
        Returns the log indexes of the revocation entries."""
        return await self.transport.revoke_app(partner_id)

    async def log_entries(self) -> list[LogEntry]:
        """The transparency-log entries about you, decoded but not verified."""
        return await transparency.read_log(self.transport, self.user_id)

    async def verify_log(
        self,
        *,
        vkey: str | None = None,
        witnesses: Sequence[str] = (),
        cosigned: int = 0,
        wait: float = 0.0,
    ) -> VerifiedLog:
        """The log entries about you, each checked against the log's signed checkpoint
        (see ``clearpost.client.transparency``). ``vkey`` pins the log key (else it is
        trusted on first use and pinned in this device's store); ``cosigned=N`` requires N
        cosignatures from the ``witnesses`` (cosignature/v1 vkeys). With ``wait`` seconds,
        entries newer than the checkpoint are waited for. Raises ``LogVerificationFailed``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        first_use = False
        while True:
            result = await transparency.verify_log(
                self.transport,
                self.store,
                self.user_id,
                vkey=vkey,
                witnesses=witnesses,
                cosigned=cosigned,
            )
            first_use = first_use or result.trusted_on_first_use
            behind = result.pending or (
                cosigned and any(e.verified and not e.witnessed for e in result.entries)
            )
            if not behind or loop.time() >= deadline:
                indexes = [e.index for e in result.entries]
                counted = await check_complete(self.crypto.directory, indexes)  # issue 17
                return dataclasses.replace(
                    result,
                    trusted_on_first_use=first_use,
                    complete_through=counted.through,
                    counted_every=counted.every,
                    counted_at_ms=counted.counted_at_ms,
                )
            await asyncio.sleep(0.25)


def _remove(path: Path) -> None:
    """Remove a store that never got a device (the login failed)."""
    for extra in ("", "-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
