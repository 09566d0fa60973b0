"""Partners and their public agreements; the scope catalogue; pairwise pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

import orjson

from clearpost.core.clock import Clock
from clearpost.core.errors import Conflict, NotFound
from clearpost.core.partners.agreement import Agreement, agreement_from_json, parse_agreement
from clearpost.core.partners.scopes import CATALOGUE_VERSION, catalogue
from clearpost.core.tlog.entries import (
    agreement_entry,
    encode_entry,
    partner_entry,
    scopes_entry,
)
from clearpost.server.services.oauth_models import PartnerClient, sha256_hex
from clearpost.storage.sql.partners import AgreementVersion as AgreementVersion  # shown
from clearpost.storage.sql.partners import PartnerRow, PartnerStore
from clearpost.storage.sql.secrets import SecretStore


class PartnerService:
    def __init__(
        self,
        store: PartnerStore,
        secrets_store: SecretStore,
        clock: Clock,
        on_logged: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.secrets, self.clock = store, secrets_store, clock
        self._on_logged = on_logged

    def _logged(self) -> None:
        if self._on_logged is not None:
            self._on_logged()

    async def register(self, agreement_text: str) -> tuple[AgreementVersion, str]:
        """Register a partner under an agreement; returns the logged version and the client
        secret (shown once, stored only as a hash)."""
        agreement = parse_agreement(agreement_text)
        secret = "cps_" + secrets.token_urlsafe(32)
        version = await self._publish(agreement, 1, sha256_hex(secret))
        return version, secret

    async def update(self, agreement_text: str) -> AgreementVersion:
        agreement = parse_agreement(agreement_text)
        current = await self.store.current(agreement.partner_id)
        if current is None:
            raise NotFound(
                f"no partner {agreement.partner_id!r}; register it first", code="partner_not_found"
            )
        return await self._publish(agreement, current.version + 1, None)

    async def _publish(
        self, agreement: Agreement, version: int, secret_hash: str | None
    ) -> AgreementVersion:
        now = self.clock.now_ms()
        body = agreement.to_json()
        entry = encode_entry(agreement_entry(agreement.partner_id, version, body, now))
        published = await self.store.publish_agreement(
            agreement.partner_id,
            agreement.name,
            orjson.dumps(body).decode(),
            entry,
            now,
            secret_hash,
        )
        self._logged()
        return published

    async def publish_catalogue(self) -> int:
        body = catalogue()
        now = self.clock.now_ms()
        index = await self.store.publish_catalogue(
            CATALOGUE_VERSION,
            orjson.dumps(body).decode(),
            encode_entry(scopes_entry(body, now)),
            now,
        )
        self._logged()
        return index

    async def all(self) -> list[PartnerRow]:
        return await self.store.partners()

    async def versions(self, partner_id: str) -> list[AgreementVersion]:
        versions = await self.store.versions(partner_id)
        if not versions:
            raise NotFound(f"no partner {partner_id[:40]!r}", code="partner_not_found")
        return versions

    async def agreement(self, partner_id: str) -> tuple[Agreement, AgreementVersion]:
        current = await self.store.current(partner_id)
        if current is None:
            raise NotFound(f"no partner {partner_id[:40]!r}", code="partner_not_found")
        return agreement_from_json(orjson.loads(current.body)), current

    async def suspend(self, partner_id: str) -> int:
        """Suspend a partner: its tokens and client credentials stop working and no one can
        consent to it, until it is resumed. Logged before it takes effect."""
        partner = await self._existing(partner_id)
        if partner.suspended_at is not None:
            raise Conflict(f"{partner_id} is already suspended", code="already_suspended")
        now = self.clock.now_ms()
        entry = encode_entry(partner_entry(partner_id, "suspended", now))
        index = await self.store.change(partner_id, entry, now, suspended_at=now)
        self._logged()
        return index

    async def resume(self, partner_id: str) -> int:
        partner = await self._existing(partner_id)
        if partner.suspended_at is None:
            raise Conflict(f"{partner_id} is not suspended", code="not_suspended")
        now = self.clock.now_ms()
        entry = encode_entry(partner_entry(partner_id, "resumed", now))
        index = await self.store.change(partner_id, entry, now, resume=True)
        self._logged()
        return index

    async def rotate_secret(self, partner_id: str) -> tuple[str, int]:
        """A new client secret (shown once); the old one stops working at once."""
        await self._existing(partner_id)
        secret = "cps_" + secrets.token_urlsafe(32)
        now = self.clock.now_ms()
        entry = encode_entry(partner_entry(partner_id, "secret-rotated", now))
        index = await self.store.change(partner_id, entry, now, secret_hash=sha256_hex(secret))
        self._logged()
        return secret, index

    async def is_suspended(self, partner_id: str) -> bool:
        partner = await self.store.partner(partner_id)
        return partner is not None and partner.suspended_at is not None

    async def _existing(self, partner_id: str) -> PartnerRow:
        partner = await self.store.partner(partner_id)
        if partner is None:
            raise NotFound(f"no partner {partner_id[:40]!r}", code="partner_not_found")
        return partner

    async def client(self, partner_id: str) -> PartnerClient | None:
        """The OAuth client of a partner; None if there is none, or it is suspended."""
        partner = await self.store.partner(partner_id)
        if partner is None or partner.suspended_at is not None:
            return None
        agreement, _ = await self.agreement(partner_id)
        return PartnerClient(agreement, partner.secret_hash)

    async def catalogues(self) -> list[tuple[int, str, int]]:
        return await self.store.catalogues()

    async def pairwise_id(self, partner_id: str, user_id: str) -> str:
        """A stable id for ``user_id`` that differs per partner, so partners cannot link users."""
        key = await self.secrets.get("pairwise")
        digest = hmac.new(key, f"{partner_id}\x00{user_id}".encode(), hashlib.sha256).digest()
        return "pu_" + digest[:16].hex()
