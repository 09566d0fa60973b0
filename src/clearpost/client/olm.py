"""The device's Olm side: its Account, published keys, and Olm sessions with other devices.

Olm carries every key event (``m.room_key``, ``m.forwarded_room_key``,
``m.room_key_request``, ``m.room_key.withheld``) from this device to exactly one other
device, as an ``m.room.encrypted`` to-device event (formats in ``formats``). Ratchet state
is written to the store *before* any ciphertext leaves the device, so a crash can never
make us reuse a message key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import vodozemac

from clearpost.client import formats
from clearpost.client.errors import ClientError, CryptoError, DecryptionFailed, UntrustedSender
from clearpost.client.formats import OlmPayload
from clearpost.client.model import Device
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.client.verify import DeviceTracker
from clearpost.core import canonical
from clearpost.core.clock import Clock
from clearpost.core.e2ee.device_keys import ALGORITHMS, KEY_ALGORITHM, parse_signed_key
from clearpost.core.errors import InvalidInput

log = logging.getLogger("clearpost.client")

ONE_TIME_KEY_TARGET = 50
"""Unclaimed one-time keys we keep on the server (it caps them at 200, 100 per upload)."""

TO_DEVICE_CHUNK = 100


@dataclass(slots=True)
class _Session:
    session: vodozemac.Session
    created_ms: int
    last_used_ms: int
    dirty: bool = False


def _generate_fallback_key(account: vodozemac.Account) -> None:
    # Present in vodozemac 0.10 but missing from its type stubs.
    account.generate_fallback_key()  # type: ignore[attr-defined]


def _fallback_key(account: vodozemac.Account) -> dict[str, vodozemac.Curve25519PublicKey]:
    keys: dict[str, vodozemac.Curve25519PublicKey] = account.fallback_key  # type: ignore[attr-defined]
    return keys


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


class OlmMachine:
    def __init__(
        self,
        store: DeviceStore,
        transport: Transport,
        devices: DeviceTracker,
        clock: Clock,
        user_id: str,
        device_id: str,
        account: vodozemac.Account,
    ) -> None:
        self.store, self.transport, self.devices, self.clock = store, transport, devices, clock
        self.user_id, self.device_id = user_id, device_id
        self.account = account
        self.curve25519 = account.curve25519_key.to_base64()
        self.ed25519 = account.ed25519_key.to_base64()
        """The identity keys (they never change for a device)."""
        self._account_dirty = False
        self._sessions: dict[str, list[_Session]] = {}
        self._wedged: set[str] = set()

    @classmethod
    def load(
        cls,
        store: DeviceStore,
        transport: Transport,
        devices: DeviceTracker,
        clock: Clock,
        user_id: str,
        device_id: str,
    ) -> OlmMachine:
        pickled = store.get_meta("account")
        if pickled is None:
            machine = cls(store, transport, devices, clock, user_id, device_id, vodozemac.Account())
            machine._account_dirty = True
            machine.flush()
            return machine
        account = vodozemac.Account.from_pickle(pickled.decode(), store.pickle_key)
        return cls(store, transport, devices, clock, user_id, device_id, account)

    # -- identity -------------------------------------------------------------------------

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        sig = self.account.sign(canonical.matrix_signable(obj)).to_base64()
        return {**obj, "signatures": {self.user_id: {f"ed25519:{self.device_id}": sig}}}

    def device_keys(self) -> dict[str, Any]:
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": list(ALGORITHMS),
                "keys": {
                    f"curve25519:{self.device_id}": self.curve25519,
                    f"ed25519:{self.device_id}": self.ed25519,
                },
            }
        )

    async def publish_identity(self) -> int:
        """Upload the self-signed identity keys (idempotent); returns the server's key count."""
        return await self.transport.upload_keys({"device_keys": self.device_keys()})

    async def maintain_keys(
        self, unclaimed: int, fallback_used: bool, *, force_fallback: bool = False
    ) -> None:
        """Keep ``ONE_TIME_KEY_TARGET`` one-time keys published; replace a used fallback key.

        Keys are generated and saved before they are uploaded, and uploaded again if a
        previous upload did not finish (the server treats a repeat as a no-op)."""
        need = max(0, ONE_TIME_KEY_TARGET - unclaimed)
        pending = len(self.account.one_time_keys)
        if need > pending:
            self.account.generate_one_time_keys(need - pending)
            self._account_dirty = True
        if fallback_used or force_fallback:
            _generate_fallback_key(self.account)
            self._account_dirty = True
        otks = {
            f"signed_curve25519:{kid}": self.sign({"key": k.to_base64()})
            for kid, k in self.account.one_time_keys.items()
        }
        fallback = {
            f"signed_curve25519:{kid}": self.sign({"key": k.to_base64(), "fallback": True})
            for kid, k in _fallback_key(self.account).items()
        }
        if not otks and not fallback:
            return
        self.flush()
        for start in range(0, max(len(otks), 1), 100):
            body: dict[str, Any] = {"one_time_keys": dict(list(otks.items())[start : start + 100])}
            if fallback:
                body["fallback_keys"], fallback = fallback, {}
            await self.transport.upload_keys(body)
        self.account.mark_keys_as_published()
        self._account_dirty = True
        self.flush()

    # -- persistence ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write the account and every changed Olm session, and commit."""
        if self._account_dirty:
            self.store.set_meta("account", self.account.pickle(self.store.pickle_key).encode())
            self._account_dirty = False
        rows = []
        for curve, sessions in self._sessions.items():
            for s in sessions:
                if s.dirty:
                    rows.append(
                        (
                            curve,
                            s.session.session_id,
                            s.session.pickle(self.store.pickle_key),
                            s.created_ms,
                            s.last_used_ms,
                        )
                    )
                    s.dirty = False
        self.store.write_many(
            "INSERT INTO olm_sessions (curve_key, session_id, pickle, created_ms, last_used_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (curve_key, session_id) DO UPDATE SET "
            "pickle = excluded.pickle, last_used_ms = excluded.last_used_ms",
            rows,
        )
        self.store.commit()

    def _sessions_for(self, curve: str) -> list[_Session]:
        if curve not in self._sessions:
            rows = self.store.query(
                "SELECT pickle, created_ms, last_used_ms FROM olm_sessions "
                "WHERE curve_key = ? ORDER BY last_used_ms DESC",
                (curve,),
            )
            self._sessions[curve] = [
                _Session(vodozemac.Session.from_pickle(r[0], self.store.pickle_key), r[1], r[2])
                for r in rows
            ]
        return self._sessions[curve]

    def _add_session(self, curve: str, session: vodozemac.Session) -> _Session:
        now = self.clock.now_ms()
        entry = _Session(session, now, now, dirty=True)
        self._sessions_for(curve).insert(0, entry)
        return entry

    # -- sending --------------------------------------------------------------------------

    async def send(self, items: list[tuple[Device, str, dict[str, Any]]]) -> set[tuple[str, str]]:
        """Encrypt one control payload per device and queue them as to-device messages.

        Claims one-time keys for devices we have no working session with (verifying each
        key's signature by that device). Returns the devices that could not be reached."""
        unreachable: set[tuple[str, str]] = set()
        need = {
            d.curve25519: d
            for d, _, _ in items
            if d.curve25519 in self._wedged or not self._sessions_for(d.curve25519)
        }
        if need:
            wanted: dict[str, dict[str, str]] = {}
            for d in need.values():
                wanted.setdefault(d.user_id, {})[d.device_id] = KEY_ALGORITHM
            claimed = await self.transport.claim_keys(wanted)
            for d in need.values():
                entry = claimed.get(d.user_id, {}).get(d.device_id) or {}
                try:
                    signed = next(
                        (v for k, v in entry.items() if k.startswith(KEY_ALGORITHM + ":")), None
                    )
                    if not isinstance(signed, dict):
                        raise CryptoError("no one-time key available", code="no_one_time_key")
                    otk = parse_signed_key(
                        signed,
                        d.user_id,
                        d.device_id,
                        d.ed25519,
                        fallback=signed.get("fallback") is True,
                    )
                    session = self.account.create_outbound_session(
                        vodozemac.Curve25519PublicKey.from_base64(d.curve25519),
                        vodozemac.Curve25519PublicKey.from_base64(otk),
                    )
                except (
                    CryptoError,
                    InvalidInput,
                    KeyError,
                    TypeError,
                    vodozemac.KeyException,
                ) as exc:
                    log.warning(
                        "cannot start an Olm session with %s/%s: %s", d.user_id, d.device_id, exc
                    )
                    unreachable.add((d.user_id, d.device_id))
                    continue
                self._add_session(d.curve25519, session)
                self._wedged.discard(d.curve25519)
        layers: list[dict[str, dict[str, Any]]] = []  # at most one envelope per device per request
        for d, kind, content in items:
            if (d.user_id, d.device_id) in unreachable:
                continue
            current = self._sessions_for(d.curve25519)[0]
            plaintext = OlmPayload(
                kind, content, self.user_id, self.device_id, self.ed25519, d.user_id, d.ed25519
            ).to_bytes()
            kind_no, body = current.session.encrypt(plaintext).to_parts()
            current.last_used_ms, current.dirty = self.clock.now_ms(), True
            envelope = formats.olm_content(
                self.curve25519, d.curve25519, kind_no, base64.b64encode(body).decode().rstrip("=")
            )
            layer = next((la for la in layers if d.device_id not in la.get(d.user_id, {})), None)
            if layer is None:
                layer = {}
                layers.append(layer)
            layer.setdefault(d.user_id, {})[d.device_id] = envelope
        self.flush()  # ratchets are saved before any ciphertext leaves
        for layer in layers:
            flat = [(u, dev, env) for u, by_dev in layer.items() for dev, env in by_dev.items()]
            for start in range(0, len(flat), TO_DEVICE_CHUNK):
                chunk: dict[str, dict[str, Any]] = {}
                for u, dev, env in flat[start : start + TO_DEVICE_CHUNK]:
                    chunk.setdefault(u, {})[dev] = env
                result = await self.transport.send_to_device(
                    formats.ENCRYPTED, "td" + secrets.token_urlsafe(16), chunk
                )
                for gone in result.get("unknown_devices", []):
                    unreachable.add((str(gone["user_id"]), str(gone["device_id"])))
        return unreachable

    # -- receiving ------------------------------------------------------------------------

    async def decrypt(self, sender_user: str, sender_device: str, content: Any) -> OlmPayload:
        """Decrypt and check one ``m.room.encrypted`` to-device event's content.

        Steps:
        1. The content is m.olm.v1.curve25519-aes-sha2 and holds a ciphertext for this
           device's Curve25519 key.
        2. The server-named sender device is one we verified (fetching its keys if new),
           and its Curve25519 key is the content's ``sender_key``.
        3. Olm decrypts it (an existing session, or a new one from a pre-key message).
        4. The payload's ``sender``, ``sender_device`` (if it names one: Matrix's payload,
           and matrix-sdk-crypto's, has none) and ``keys.ed25519`` name that device and its
           Ed25519 key; its ``recipient`` and ``recipient_keys.ed25519`` name this
           device's user and Ed25519 key.
        """
        # 1.
        sender_key, kind, body = formats.olm_ciphertext(content, self.curve25519)
        # 2.
        device = self.devices.device(sender_user, sender_device)
        if device is None or device.curve25519 != sender_key:
            try:
                await self.devices.refresh(sender_user)
            except ClientError as exc:
                raise UntrustedSender(f"cannot look up the devices of {sender_user}") from exc
            device = self.devices.device(sender_user, sender_device)
        if device is None or device.curve25519 != sender_key:
            raise UntrustedSender(
                f"a to-device message claims to come from {sender_user}/{sender_device}, "
                "whose verified keys do not match"
            )
        # 3.
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise DecryptionFailed("an Olm message is not base64") from exc
        plaintext = self._olm_decrypt(device.curve25519, kind, raw)
        # 4.
        payload = OlmPayload.parse(plaintext, sender_device)
        if (payload.sender, payload.sender_device, payload.sender_ed25519) != (
            sender_user,
            sender_device,
            device.ed25519,
        ):
            raise UntrustedSender(
                "a to-device payload names a different sender than the one that sent it"
            )
        if (payload.recipient, payload.recipient_ed25519) != (self.user_id, self.ed25519):
            raise UntrustedSender(
                "a to-device payload was addressed to another device", code="not_for_us"
            )
        return payload

    def _olm_decrypt(self, curve: str, kind: int, body: bytes) -> bytes:
        try:
            message = vodozemac.AnyOlmMessage.from_parts(kind, body)
        except (binascii.Error, vodozemac.DecodeException, ValueError) as exc:
            raise DecryptionFailed("an Olm message does not parse") from exc
        sessions = self._sessions_for(curve)
        prekey = message.to_pre_key() if kind == 0 else None
        for entry in sessions:
            if prekey is not None and not entry.session.session_matches(prekey):
                continue
            try:
                plaintext = entry.session.decrypt(message)
            except vodozemac.OlmDecryptionException:
                continue
            entry.last_used_ms, entry.dirty = self.clock.now_ms(), True
            return plaintext
        if prekey is None:
            self._wedged.add(curve)  # start a fresh session the next time we send to them
            raise DecryptionFailed("an Olm message matches none of our sessions with its sender")
        try:
            session, plaintext = self.account.create_inbound_session(
                vodozemac.Curve25519PublicKey.from_base64(curve), prekey
            )
        except (vodozemac.SessionCreationException, vodozemac.KeyException) as exc:
            raise DecryptionFailed("cannot open an Olm session from a pre-key message") from exc
        self._account_dirty = True  # the one-time key it used is gone now
        self._add_session(curve, session)
        return plaintext
