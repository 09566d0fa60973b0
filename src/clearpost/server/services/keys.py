"""Device keys, one-time keys, fallback keys: Matrix's upload, query and claim.

Everything in one upload is checked before anything is stored, so a bad one-time key in an
upload that also carries new device keys stores neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from clearpost.core.clock import Clock
from clearpost.core.e2ee.device_keys import (
    KEY_ALGORITHM,
    UnsupportedAlgorithm,
    key_id,
    parse_device_keys,
    parse_signed_key,
)
from clearpost.core.errors import Conflict, InvalidInput
from clearpost.core.ids import parse_user_id
from clearpost.core.limits import MAX_DEVICE_KEYS_BYTES, MAX_SIGNED_KEY_BYTES, bounded_json
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.keys import ClaimedKey, KeyStore

MAX_ONE_TIME_KEYS_PER_UPLOAD = 100
MAX_UNCLAIMED = 200
MAX_CLAIM_DEVICES = 1000
MAX_QUERY_USERS = 1000
CLAIMS_PER_TARGET = 10
"""Keys one account may claim of one device per minute (a minute's worth at once): a new
Olm session needs one; the bound keeps a caller from draining a device's one-time keys."""
UPLOAD_FIELDS = {"device_keys", "one_time_keys", "fallback_keys"}


class KeyService:
    def __init__(
        self,
        keys: KeyStore,
        accounts: AccountStore,
        clock: Clock,
        notifier: Notifier,
        server_name: str = "clearpost.localhost",
    ) -> None:
        self.keys, self.accounts, self.clock, self.notifier = keys, accounts, clock, notifier
        self.server_name = server_name
        self.on_logged: Callable[[], None] | None = None
        self.on_device_changed: Callable[[str, str], None] = lambda _user, _device: None
        self.until_published: Callable[[str], Awaitable[None]] | None = None
        """Waits until the key directory commits an account's new device (issue 17)."""
        self.claim_limiter = RateLimiter(
            clock, CLAIMS_PER_TARGET / 60, CLAIMS_PER_TARGET, "key claims for that device"
        )

    async def upload(self, caller: Caller, body: Any) -> dict[str, int]:
        """``POST /v1/keys/upload``: this device's keys, one-time keys and fallback key.

        1. the body is an object of the three optional Matrix fields, nothing else;
        2. device keys, when present, name this user and device and are self-signed;
        3. every one-time and fallback key is signed by this device's Ed25519 key (the one
           just uploaded, or the one on record) and there are not too many;
        4. only then: device keys stored (same again is a no-op, different is 409), then
           the one-time and fallback keys.
        """
        # (1)
        if not isinstance(body, dict) or set(body) - UPLOAD_FIELDS:
            raise InvalidInput(
                "the body must be {'device_keys'?, 'one_time_keys'?, 'fallback_keys'?}"
            )
        otks, fallbacks = body.get("one_time_keys"), body.get("fallback_keys")
        otks = {} if otks is None else otks
        fallbacks = {} if fallbacks is None else fallbacks
        if not isinstance(otks, dict) or not isinstance(fallbacks, dict):
            raise InvalidInput("one_time_keys and fallback_keys map key ids to signed keys")
        # (2)
        identity: tuple[str, str, str] | None = None
        if body.get("device_keys") is not None:
            encoded = bounded_json(body["device_keys"], "device_keys", MAX_DEVICE_KEYS_BYTES)
            ident = parse_device_keys(body["device_keys"], caller.user_id, caller.device_id)
            identity = (ident.curve25519, ident.ed25519, encoded)
        # (3)
        if otks or fallbacks:
            ed = identity[1] if identity is not None else await self._ed25519(caller)
            parsed = self._signed(caller, otks, ed, fallback=False)
            if len(fallbacks) > 1:
                raise InvalidInput("fallback_keys holds at most one key")
            fallback = None
            for raw_id, fobj in self._signed(caller, fallbacks, ed, fallback=True).items():
                fallback = (raw_id, fobj)
            count, _ = await self.keys.counts(caller.user_id, caller.device_id)
            if count + len(parsed) > MAX_UNCLAIMED:
                raise InvalidInput(
                    f"a device may hold at most {MAX_UNCLAIMED} unclaimed one-time keys",
                    code="too_many_keys",
                )
        # (4)
        if identity is not None:
            await self._set_identity(caller, *identity)
        if otks or fallbacks:
            unclaimed = await self.keys.add_one_time_keys(
                caller.user_id, caller.device_id, parsed, fallback
            )
        else:
            unclaimed, _ = await self.keys.counts(caller.user_id, caller.device_id)
        return {KEY_ALGORITHM: unclaimed}

    async def _ed25519(self, caller: Caller) -> str:
        identity = await self.keys.identity(caller.user_id, caller.device_id)
        if identity is None or identity[1] is None:
            raise Conflict(
                "upload this device's device_keys before its one-time keys",
                code="device_keys_missing",
            )
        return identity[1]

    def _signed(
        self, caller: Caller, keys: dict[str, Any], ed: str, *, fallback: bool
    ) -> dict[str, str]:
        if len(keys) > MAX_ONE_TIME_KEYS_PER_UPLOAD:
            raise InvalidInput(f"at most {MAX_ONE_TIME_KEYS_PER_UPLOAD} one-time keys per upload")
        out: dict[str, str] = {}
        for raw_id, signed in keys.items():
            kid = key_id(raw_id)
            what = f"fallback key {kid!r}" if fallback else f"one-time key {kid!r}"
            encoded = bounded_json(signed, what, MAX_SIGNED_KEY_BYTES)
            parse_signed_key(signed, caller.user_id, caller.device_id, ed, fallback=fallback)
            out[kid] = encoded
        return out

    async def _set_identity(self, caller: Caller, curve: str, ed: str, encoded: str) -> None:
        told = await self.keys.set_identity(
            caller.user_id, caller.device_id, curve, ed, encoded, self.clock.now_ms()
        )
        if told:
            self.notifier.publish(told)
            self.on_device_changed(caller.user_id, caller.device_id)
            if self.on_logged is not None:
                self.on_logged()
            if self.until_published is not None:
                await self.until_published(caller.user_id)

    async def counts(self, caller: Caller) -> tuple[int, bool]:
        """(unclaimed one-time keys, whether an unused fallback key is held)."""
        return await self.keys.counts(caller.user_id, caller.device_id)

    async def query(self, caller: Caller, wanted: Any) -> dict[str, dict[str, Any]]:
        """``POST /v1/keys/query``: each named user's devices (all of them for an empty
        list) with their signed device keys; ``unsigned.device_display_name`` only for the
        caller's own devices (device names are the owner's)."""
        if not isinstance(wanted, dict):
            raise InvalidInput("device_keys must map user ids to lists of device ids")
        if len(wanted) > MAX_QUERY_USERS:
            raise InvalidInput(f"query at most {MAX_QUERY_USERS} users at once")
        for user_id, device_ids in wanted.items():
            parse_user_id(user_id, self.server_name)
            if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
                raise InvalidInput("device_keys must map user ids to lists of device ids")
        published = await self.keys.published(list(wanted))
        out: dict[str, dict[str, Any]] = {}
        for user_id, device_ids in wanted.items():
            only = set(device_ids)
            devices: dict[str, Any] = {}
            for device_id, name, keys in published.get(user_id, []):
                if only and device_id not in only:
                    continue
                obj = orjson.loads(keys)
                unsigned = (
                    {"device_display_name": name} if user_id == caller.user_id and name else {}
                )
                devices[device_id] = {**obj, "unsigned": unsigned}
            out[user_id] = devices
        return out

    async def claim(self, caller: str, wanted: Any) -> dict[str, dict[str, ClaimedKey]]:
        """``POST /v1/keys/claim``: one key per distinct device asked for, a one-time key
        while any is left, then the fallback key. Issue 15: a request naming one device
        1,000 times drained all its one-time keys, then its fallback key; now each device
        counts once per request, and each caller may claim ``CLAIMS_PER_TARGET`` a minute
        of it."""
        if not isinstance(wanted, dict):
            raise InvalidInput("one_time_keys must map user ids to {device id: algorithm}")
        pairs: list[tuple[str, str]] = []
        for user_id, by_device in wanted.items():
            parse_user_id(user_id, self.server_name)
            if not isinstance(by_device, dict):
                raise InvalidInput("one_time_keys must map user ids to {device id: algorithm}")
            for device_id, algorithm in by_device.items():
                if algorithm != KEY_ALGORITHM:
                    raise UnsupportedAlgorithm(
                        f"only {KEY_ALGORITHM} keys can be claimed, not {str(algorithm)[:60]!r}"
                    )
                pairs.append((user_id, device_id))
        if len(pairs) > MAX_CLAIM_DEVICES:
            raise InvalidInput(f"claim at most {MAX_CLAIM_DEVICES} devices at once")
        for user, device in pairs:
            self.claim_limiter.check(f"{caller}\n{user}\n{device}")
        for user, device in pairs:
            self.claim_limiter.hit(f"{caller}\n{user}\n{device}")
        claimed = await self.keys.claim(pairs, self.clock.now_ms())
        out: dict[str, dict[str, ClaimedKey]] = {}
        for (user, device), key in claimed.items():
            out.setdefault(user, {})[device] = key
        return out
