"""Device identity keys, one-time keys, fallback keys and key claims."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from clearpost.core.clock import Clock
from clearpost.core.e2ee.device_keys import parse_device_keys, parse_signed_key
from clearpost.core.errors import Conflict, InvalidInput, NotFound
from clearpost.core.limits import MAX_DEVICE_KEYS_BYTES, MAX_SIGNED_KEY_BYTES, bounded_json
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.keys import ClaimedKey, KeyStore

MAX_ONE_TIME_KEYS_PER_UPLOAD = 100
MAX_UNCLAIMED = 200
MAX_CLAIM_DEVICES = 1000
KEY_ALGORITHM = "signed_curve25519"
CLAIMS_PER_TARGET = 10
"""Keys one account may claim of one device per minute (a minute's worth at once): a new
Olm session needs one; the bound keeps a caller from draining a device's one-time keys."""


class KeyService:
    def __init__(
        self, keys: KeyStore, accounts: AccountStore, clock: Clock, notifier: Notifier
    ) -> None:
        self.keys, self.accounts, self.clock, self.notifier = keys, accounts, clock, notifier
        self.on_logged: Callable[[], None] | None = None
        self.on_device_changed: Callable[[str, str], None] = lambda _user, _device: None
        self.until_published: Callable[[str], Awaitable[None]] | None = None
        """Waits until the key directory commits an account's new device (issue 17)."""
        self.claim_limiter = RateLimiter(
            clock, CLAIMS_PER_TARGET / 60, CLAIMS_PER_TARGET, "key claims for that device"
        )

    async def upload_identity(self, caller: Caller, device_id: str, device_keys: Any) -> None:
        if device_id != caller.device_id:
            raise NotFound(
                "you can upload keys only for the device you are logged in as",
                code="device_not_found",
            )
        # bounded first: everyone who looks the device up is served this object as stored
        encoded = bounded_json(device_keys, "device_keys", MAX_DEVICE_KEYS_BYTES)
        ident = parse_device_keys(device_keys, caller.user_id, caller.device_id)
        told = await self.keys.set_identity(
            caller.user_id,
            caller.device_id,
            ident.curve25519,
            ident.ed25519,
            encoded,
            self.clock.now_ms(),
        )
        if told:
            self.notifier.publish(told)
            self.on_device_changed(caller.user_id, caller.device_id)
            if self.on_logged is not None:
                self.on_logged()
            if self.until_published is not None:
                await self.until_published(caller.user_id)

    async def upload_one_time(
        self, caller: Caller, one_time_keys: dict[str, Any], fallback_key: dict[str, Any] | None
    ) -> dict[str, int]:
        identity = await self.keys.identity(caller.user_id, caller.device_id)
        if identity is None or identity[1] is None:
            raise Conflict(
                "upload this device's identity keys before its one-time keys",
                code="device_keys_missing",
            )
        ed = identity[1]
        if len(one_time_keys) > MAX_ONE_TIME_KEYS_PER_UPLOAD:
            raise InvalidInput(f"at most {MAX_ONE_TIME_KEYS_PER_UPLOAD} one-time keys per upload")
        parsed: dict[str, str] = {}
        for raw_id, signed in one_time_keys.items():
            key_id = _key_id(raw_id)
            encoded = bounded_json(signed, f"one-time key {key_id!r}", MAX_SIGNED_KEY_BYTES)
            parse_signed_key(signed, caller.user_id, caller.device_id, ed)  # raises if bad
            parsed[key_id] = encoded
        fallback = None
        if fallback_key is not None:
            if len(fallback_key) != 1:
                raise InvalidInput("fallback_key must hold exactly one key")
            ((fid, fobj),) = fallback_key.items()
            key_id = _key_id(fid)
            encoded = bounded_json(fobj, "the fallback key", MAX_SIGNED_KEY_BYTES)
            parse_signed_key(fobj, caller.user_id, caller.device_id, ed)
            fallback = (key_id, encoded)
        count, _ = await self.keys.counts(caller.user_id, caller.device_id)
        if count + len(parsed) > MAX_UNCLAIMED:
            raise InvalidInput(
                f"a device may hold at most {MAX_UNCLAIMED} unclaimed one-time keys",
                code="too_many_keys",
            )
        unclaimed = await self.keys.add_one_time_keys(
            caller.user_id, caller.device_id, parsed, fallback
        )
        return {KEY_ALGORITHM: unclaimed}

    async def counts(self, caller: Caller) -> tuple[int, bool]:
        return await self.keys.counts(caller.user_id, caller.device_id)

    async def claim(
        self, caller: str, wanted: dict[str, list[str]]
    ) -> dict[str, dict[str, ClaimedKey]]:
        """One key per distinct device asked for. Issue 15: a request naming one device 1,000
        times drained all its one-time keys, then its fallback key; now each device counts
        once per request, and each caller may claim ``CLAIMS_PER_TARGET`` a minute of it."""
        if sum(len(ds) for ds in wanted.values()) > MAX_CLAIM_DEVICES:
            raise InvalidInput(f"claim at most {MAX_CLAIM_DEVICES} devices at once")
        pairs = list(dict.fromkeys((u, d) for u, ds in wanted.items() for d in ds))
        for user, device in pairs:
            self.claim_limiter.check(f"{caller}\n{user}\n{device}")
        for user, device in pairs:
            self.claim_limiter.hit(f"{caller}\n{user}\n{device}")
        claimed = await self.keys.claim(pairs, self.clock.now_ms())
        out: dict[str, dict[str, ClaimedKey]] = {}
        for (user, device), key in claimed.items():
            out.setdefault(user, {})[device] = key
        return out


def _key_id(raw: str) -> str:
    """Key ids look like ``signed_curve25519:AAAAAQ``; we keep the part after the colon."""
    algorithm, _, key_id = raw.partition(":")
    if algorithm != KEY_ALGORITHM or not key_id or len(key_id) > 64:
        raise InvalidInput(f"key ids must be '{KEY_ALGORITHM}:<id>' (id up to 64 characters)")
    return key_id
