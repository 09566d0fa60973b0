"""Registration, login, logout and devices.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 profile) off the event loop.
Access tokens are random, one per device, and stored only as their SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clearpost.core.clock import Clock
from clearpost.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from clearpost.core.ids import (
    USERNAME_RE,
    DeviceId,
    UserId,
    localpart,
    new_access_token,
    new_device_id,
    user_id_for,
)
from clearpost.server.services.notifier import Notifier
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.accounts import DeviceRow as DeviceRow  # what the HTTP layer shows
from clearpost.storage.sql.keys import KeyStore

MIN_PASSWORD = 8
TOKEN_CACHE_SIZE = 100_000
HASH_THREADS = 2
T = TypeVar("T")
MAX_PASSWORD = 1024
TOKEN_CACHE_SECONDS = 5.0
"""How long a cached token is believed without asking the database: the bound on how long
a suspension made by another process (``clearpost admin``) takes to bite on SQLite. A
device deletion in this process, or on PostgreSQL in any, drops the entry at once."""
INVITE_DAYS = 7
RESERVED_PREFIX = "deleted-"
"""Erased accounts are shown as ``@deleted-<random>:<server_name>``; nobody can register
such a name."""
MAX_DISPLAY_NAME = 64
FAILED_SIGN_INS_BURST = 10
FAILED_SIGN_INS_PER_MINUTE = 1.0
"""Wrong passwords one account takes: 10 at once, then one a minute, from all IPs
together (the per-IP limit alone let many addresses guess one password; issue 15)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is making an authenticated request."""

    user_id: UserId
    device_id: DeviceId
    curve25519: str | None = None
    """The device's published Curve25519 key (None until it uploads its keys)."""

    def published_key(self) -> str:
        """The Curve25519 key envelopes from this device must name; a device that has not
        published its keys cannot send anything encrypted."""
        if self.curve25519 is None:
            raise Conflict(
                "publish this device's identity keys before sending encrypted messages",
                code="device_keys_missing",
            )
        return self.curve25519


@dataclass(frozen=True, slots=True)
class Session:
    user_id: UserId
    device_id: DeviceId
    access_token: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountService:
    def __init__(
        self,
        accounts: AccountStore,
        keys: KeyStore,
        clock: Clock,
        notifier: Notifier,
        hasher: PasswordHasher | None = None,
        registration: str = "open",
        server_name: str = "clearpost.localhost",
    ) -> None:
        self.accounts, self.keys, self.clock, self.notifier = accounts, keys, clock, notifier
        self.registration = registration
        self.server_name = server_name
        """Every user id here ends in ``:<server_name>`` (``core/ids.py``)."""
        self._hasher = hasher or PasswordHasher()
        self.on_logged: Callable[[], None] | None = None
        """Called after a change that appended to the transparency log (wakes the sequencer)."""
        self._hash_threads = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="clearpost-argon2")
        self._tokens: dict[str, tuple[Caller, float]] = {}
        self._token_of: dict[tuple[str, str], str] = {}
        self._forgets = 0
        self._dummy_hash: str | None = None
        """A hash to verify against for unknown users (equal timing), made on first need."""
        self.failed_sign_ins = RateLimiter(
            clock,
            FAILED_SIGN_INS_PER_MINUTE / 60,
            FAILED_SIGN_INS_BURST,
            "wrong passwords for this account",
        )

    async def register(self, username: str, password: str, invite: str | None = None) -> UserId:
        """Open an account, as the ``registration`` setting allows: anyone (``open``), the
        holder of an unused invite (``invite``; spent only if the account is made), or
        nobody (``closed``)."""
        if self.registration == "closed":
            raise Forbidden(
                "this server does not take new registrations", code="registration_closed"
            )
        if self.registration == "invite" and not invite:
            raise Forbidden("registration on this server needs an invite", code="invite_required")
        if not USERNAME_RE.match(username):
            raise InvalidInput(
                "usernames are 3-32 characters: lower-case letters, digits, '_', '.', '-', "
                "starting with a letter",
                code="invalid_username",
            )
        if username.startswith(RESERVED_PREFIX):
            raise InvalidInput(
                f"usernames starting with {RESERVED_PREFIX!r} are reserved", code="invalid_username"
            )
        _check_password(password)
        hashed = await self._in_hash_thread(self._hasher.hash, password)
        user_id = user_id_for(username, self.server_name)
        spend = token_hash(invite) if self.registration == "invite" and invite else None
        await self.accounts.create_user(user_id, hashed, self.clock.now_ms(), spend)
        return user_id

    async def create_invite(self, note: str | None = None, days: int = INVITE_DAYS) -> str:
        """A single-use registration invite (only its hash is stored); shown once."""
        invite = "inv_" + secrets.token_urlsafe(24)
        now = self.clock.now_ms()
        await self.accounts.add_invite(token_hash(invite), now, now + days * 86_400_000, note)
        return invite

    async def change_password(self, caller: Caller, old: str, new: str) -> None:
        """Replace the caller's password, given the current one. Devices stay signed in."""
        await self.check_password(localpart(caller.user_id), old)
        _check_password(new)
        await self.accounts.set_password(
            caller.user_id, await self._in_hash_thread(self._hasher.hash, new)
        )

    async def set_suspended(self, user_id: str, suspended: bool) -> None:
        """Suspend or reinstate an account: a suspended account's devices and its partners'
        tokens get 403 ``account_suspended``; nothing is deleted."""
        at = self.clock.now_ms() if suspended else None
        if not await self.accounts.set_suspended(user_id, at):
            raise NotFound("no such user", code="user_not_found")
        self.forget(None)

    async def login(self, username: str, password: str, device_name: str | None) -> Session:
        user_id = await self.check_password(username, password)
        device_id = new_device_id()
        token = new_access_token()
        await self.accounts.add_device(
            user_id, device_id, token_hash(token), device_name, self.clock.now_ms()
        )
        return Session(UserId(user_id), device_id, token)

    async def _in_hash_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """argon2id off the event loop, two at a time: each hash holds its whole memory cost
        (64 MiB by default), so unbounded concurrency would be unbounded memory."""
        return await asyncio.get_running_loop().run_in_executor(self._hash_threads, fn, *args)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._in_hash_thread(self._hasher.hash, "timing-equaliser")
        return self._dummy_hash

    async def check_password(self, username: str, password: str) -> UserId:
        """The user id for a correct username and password (for the web sign-in)."""
        user_id = user_id_for(username, self.server_name) if USERNAME_RE.match(username) else None
        self.failed_sign_ins.check(username)  # unknown names too: no hint that one exists
        stored = await self.accounts.password_hash(user_id) if user_id else None
        ok: bool
        try:
            ok = await self._in_hash_thread(
                self._hasher.verify, stored or await self._dummy(), password
            )
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or stored is None or user_id is None:
            with contextlib.suppress(RateLimited):
                self.failed_sign_ins.hit(username)
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
        if await self.accounts.is_suspended(user_id):
            raise _suspended()
        return user_id

    async def authenticate(self, token: str) -> Caller:
        """The device a token belongs to. Answers from a per-process cache; every change to a
        device (keys published, device deleted) drops its entry here and, through
        PostgreSQL NOTIFY, in every other process."""
        hashed = token_hash(token)
        now = time.monotonic()
        cached = self._tokens.get(hashed)
        if cached is not None and cached[1] > now:
            return cached[0]
        forgets = self._forgets
        found = await self.accounts.device_for_token(hashed)
        if found is None:
            raise Unauthenticated(
                "the access token is not valid (logged out or never issued)", code="invalid_token"
            )
        if found[3]:
            raise _suspended()
        caller = Caller(UserId(found[0]), DeviceId(found[1]), found[2])
        if forgets != self._forgets:
            # a device changed while we read: what we read may be gone already, and caching
            # it would bring a deleted device's token back (issue 15). Answer, don't keep.
            return caller
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self.forget(None)
        self._tokens[hashed] = (caller, now + TOKEN_CACHE_SECONDS)
        self._token_of[(caller.user_id, caller.device_id)] = hashed
        return caller

    def forget(self, device: tuple[str, str] | None) -> None:
        """Drop the cached token of ``(user, device)``; None drops them all. Lookups that
        were reading the database meanwhile will not cache what they read."""
        self._forgets += 1
        if device is None:
            self._tokens.clear()
            self._token_of.clear()
            return
        hashed = self._token_of.pop(device, None)
        if hashed is not None:
            self._tokens.pop(hashed, None)

    async def user_exists(self, user_id: str) -> bool:
        return await self.accounts.user_exists(user_id)

    async def group_adds(self, user_id: str) -> str:
        """Who may add ``user_id`` to a group: "anyone" (the default) or "nobody"."""
        return await self.accounts.group_adds(user_id)

    async def set_group_adds(self, user_id: str, who: str) -> None:
        if who not in ("anyone", "nobody"):
            raise InvalidInput('group_adds is "anyone" or "nobody"', code="invalid_input")
        await self.accounts.set_group_adds(user_id, who)

    async def display_name(self, user_id: str) -> str | None:
        return await self.accounts.display_name(user_id)

    async def set_display_name(self, user_id: str, name: str | None) -> str | None:
        """Set (or, with None or blank, clear) the name partners with ``profile:basic`` see.
        It is the person's own choice: empty until they set one, never their username."""
        name = None if name is None else name.strip()
        if not name:
            await self.accounts.set_display_name(user_id, None)
            return None
        if len(name) > MAX_DISPLAY_NAME or any(unicodedata.category(c)[0] == "C" for c in name):
            raise InvalidInput(
                f"a display name is 1 to {MAX_DISPLAY_NAME} printable characters",
                code="invalid_display_name",
            )
        await self.accounts.set_display_name(user_id, name)
        return name

    async def devices(self, user_id: str) -> list[DeviceRow]:
        return await self.accounts.list_devices(user_id)

    async def delete_device(self, caller: Caller, device_id: str) -> None:
        """Delete one of the caller's devices (its token stops working at once)."""
        peers = await self.keys.delete_device(caller.user_id, device_id, self.clock.now_ms())
        self.forget((caller.user_id, device_id))
        if peers is None:
            raise NotFound("no such device", code="device_not_found")
        self.notifier.publish(peers)
        if self.on_logged is not None:
            self.on_logged()

    async def logout(self, caller: Caller) -> None:
        await self.delete_device(caller, caller.device_id)


def _suspended() -> Forbidden:
    return Forbidden("this account is suspended by the server's operator", code="account_suspended")


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="invalid_password"
        )
