"""Device key verification and the devices we know per user.

Nothing is encrypted to a device unless its published keys pass ``verify_device``, and a
device's keys are pinned the first time we see them: the server says keys never change,
so a change is treated as an attack, not an update. Every change in a user's device
list (including our own user's) is surfaced as a ``DeviceListChange`` so a user can
notice a device they did not add.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clearpost.client.directory import Directory
from clearpost.client.errors import DeviceVerificationFailed
from clearpost.client.model import Device, DeviceListChange
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.core.clock import Clock
from clearpost.core.e2ee.device_keys import parse_device_keys
from clearpost.core.errors import InvalidInput

log = logging.getLogger("clearpost.client")


def verify_device(entry: dict[str, Any], user_id: str, pinned: Device | None) -> Device:
    """Return the verified device described by ``entry``: ``{"device_id", "device_keys",
    "display_name"}``, the device keys as ``POST /v1/keys/query`` returns them.

    Steps:
    1. The entry has published keys (a device without keys cannot receive anything).
    2. The keys name this user and this device, use our algorithms, are well-formed
       Curve25519/Ed25519 keys, and carry a valid Ed25519 self-signature over their
       canonical JSON (``clearpost.core.e2ee.device_keys.parse_device_keys``).
    3. If we saw this device before, its keys are exactly the pinned ones.
    Raises ``DeviceVerificationFailed`` otherwise.
    """
    device_id = entry.get("device_id")
    if not isinstance(device_id, str):
        raise DeviceVerificationFailed("a device entry has no device id")
    # 1.
    keys = entry.get("device_keys")
    if keys is None:
        raise DeviceVerificationFailed(
            f"device {device_id} of {user_id} has not published keys", code="device_without_keys"
        )
    # 2.
    try:
        ident = parse_device_keys(keys, user_id, device_id)
    except InvalidInput as exc:
        raise DeviceVerificationFailed(f"device {device_id} of {user_id}: {exc.message}") from exc
    # 3.
    if pinned is not None and (pinned.curve25519, pinned.ed25519) != (
        ident.curve25519,
        ident.ed25519,
    ):
        raise DeviceVerificationFailed(
            f"device {device_id} of {user_id} now shows different keys than before; refusing it",
            code="device_keys_changed",
        )
    name = entry.get("display_name")
    return Device(
        user_id, device_id, ident.curve25519, ident.ed25519, name if isinstance(name, str) else None
    )


class DeviceTracker:
    """Verified devices per user, cached in the store and refreshed on device-list events."""

    def __init__(
        self, store: DeviceStore, transport: Transport, clock: Clock, own_user: str
    ) -> None:
        self.store, self.transport, self.clock, self.own_user = store, transport, clock, own_user
        self._stale: set[str] = set()
        self._cache: dict[str, dict[str, Device]] = {}
        self.generation = 0
        self.directory: Directory | None = None
        """Checks every device list against the key directory (issue 17)."""
        """Bumped whenever a device list may have changed (senders re-check their sessions)."""

    def _load(self, user_id: str) -> dict[str, Device] | None:
        if user_id in self._cache:
            return self._cache[user_id]
        rows = self.store.query(
            "SELECT device_id, curve25519, ed25519, display_name, status FROM devices WHERE "
            "user_id = ?",
            (user_id,),
        )
        if not rows:
            return None
        devices = {
            r[0]: Device(user_id, r[0], r[1], r[2], r[3]) for r in rows if r[4] == "verified"
        }
        self._cache[user_id] = devices
        return devices

    def _pinned(self, user_id: str, device_id: str) -> Device | None:
        rows = self.store.query(
            "SELECT curve25519, ed25519, display_name FROM devices "
            "WHERE user_id = ? AND device_id = ? AND curve25519 IS NOT NULL",
            (user_id, device_id),
        )
        return Device(user_id, device_id, rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def mark_stale(self, user_id: str) -> None:
        self._stale.add(user_id)
        self.generation += 1

    def known(self, user_id: str) -> dict[str, Device]:
        return dict(self._load(user_id) or {})

    def device(self, user_id: str, device_id: str) -> Device | None:
        return (self._load(user_id) or {}).get(device_id)

    async def devices_for(self, users: list[str]) -> dict[str, dict[str, Device]]:
        """Verified devices of each user, fetching users never seen or marked stale."""
        out: dict[str, dict[str, Device]] = {}
        for user in users:
            if user in self._stale or self._load(user) is None:
                await self.refresh(user)
            out[user] = self.known(user)
        return out

    async def refresh(self, user_id: str) -> DeviceListChange | None:
        """Fetch and verify ``user_id``'s devices; record them; return what changed."""
        self._stale.discard(user_id)
        self.generation += 1
        first_time = self._load(user_id) is None
        before = self.known(user_id)
        found = (await self.transport.query_keys([user_id])).get(user_id) or {}
        entries = [
            {
                "device_id": device_id,
                "device_keys": keys,
                "display_name": ((keys or {}).get("unsigned") or {}).get("device_display_name"),
            }
            for device_id, keys in found.items()
        ]
        unlisted = await _unlisted(self, user_id, entries)
        now: dict[str, Device] = {}
        rejected: dict[str, str] = {}
        for entry in entries:
            device_id = str(entry.get("device_id"))
            if device_id in unlisted:
                rejected[device_id] = unlisted[device_id]
                log.warning("refusing a device: %s", unlisted[device_id])
                continue
            try:
                now[device_id] = verify_device(entry, user_id, self._pinned(user_id, device_id))
            except DeviceVerificationFailed as exc:
                if exc.code != "device_without_keys":
                    rejected[device_id] = exc.message
                    log.warning("refusing a device: %s", exc.message)
        ms = self.clock.now_ms()
        self.store.write("UPDATE devices SET status = 'removed' WHERE user_id = ?", (user_id,))
        self.store.write_many(
            "INSERT INTO devices (user_id, device_id, curve25519, ed25519, display_name, status, "
            "first_seen_ms) "
            "VALUES (?, ?, ?, ?, ?, 'verified', ?) ON CONFLICT (user_id, device_id) DO UPDATE SET "
            "status = 'verified', display_name = excluded.display_name",
            [
                (user_id, d.device_id, d.curve25519, d.ed25519, d.display_name, ms)
                for d in now.values()
            ],
        )
        self.store.write_many(
            "INSERT INTO devices (user_id, device_id, status, first_seen_ms) VALUES (?, ?, "
            "'invalid', ?) "
            "ON CONFLICT (user_id, device_id) DO UPDATE SET status = 'invalid'",
            [(user_id, dev, ms) for dev in rejected],
        )
        if not now and not rejected:  # remember that we looked, so we do not ask every time
            self.store.write(
                "INSERT INTO devices (user_id, device_id, status, first_seen_ms) VALUES (?, '', "
                "'none', ?) "
                "ON CONFLICT (user_id, device_id) DO NOTHING",
                (user_id, ms),
            )
        self._cache[user_id] = now
        added = tuple(sorted(set(now) - set(before)))
        removed = tuple(sorted(set(before) - set(now)))
        if first_time and not rejected:
            return None
        if not (added or removed or rejected):
            return None
        return DeviceListChange(
            user_id,
            added,
            removed,
            tuple(sorted(rejected)),
            own=user_id == self.own_user,
            reasons=rejected,
        )


UNLISTED_RETRIES = 4
UNLISTED_WAIT_SECONDS = 0.5


async def _unlisted(
    tracker: DeviceTracker, user_id: str, entries: list[dict[str, Any]]
) -> dict[str, str]:
    """The devices the server listed that the key directory does not hold. A device that
    has just published its keys is committed at the next epoch (the server publishes one
    within a second), so one missing is asked about again a few times before it is refused."""
    if tracker.directory is None:
        return {}
    for attempt in range(UNLISTED_RETRIES):
        unlisted = await tracker.directory.refuse_unlisted(user_id, entries)
        if not unlisted or attempt == UNLISTED_RETRIES - 1:
            return unlisted
        await asyncio.sleep(UNLISTED_WAIT_SECONDS)
    return {}
