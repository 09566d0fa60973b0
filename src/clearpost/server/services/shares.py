"""Share intents from partners, the user's own view of them, click links, and the
partner's profile view — each partner access logged before it is answered."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from clearpost.core.clock import Clock
from clearpost.core.errors import Conflict, InvalidInput, NotFound
from clearpost.core.partners.agreement import Agreement
from clearpost.core.tlog.entries import access_entry, encode_entry
from clearpost.server.services.authorize import PartnerAccess
from clearpost.server.services.partners import PartnerService
from clearpost.server.services.ratelimit import RateLimiter
from clearpost.server.services.tlog import LogService
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.shares import IntentRow, LinkRow, ShareStore

INTENT_SECONDS = 24 * 3600
LINK_SECONDS = 90 * 24 * 3600
MAX_TITLE, MAX_URL, MAX_DESCRIPTION = 200, 2000, 1000
MAX_RECIPIENTS = 1000
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Created:
    intent_id: str
    expires_at: int
    log_index: int


class ShareService:
    def __init__(
        self,
        store: ShareStore,
        partners: PartnerService,
        log: LogService,
        accounts: AccountStore,
        clock: Clock,
        base_url: str,
    ) -> None:
        self.store, self.partners, self.log, self.accounts = store, partners, log, accounts
        self.clock, self.base_url = clock, base_url
        self.on_logged: Callable[[], None] | None = None
        self._per_grant: dict[str, tuple[int, RateLimiter]] = {}

    def _limit(self, access: PartnerAccess, agreement: Agreement) -> None:
        """Bound how fast one grant adds ``access`` entries: the agreement's
        ``access_per_minute``, a minute's worth at once. Without it one partner buried a
        person's own view of their log under 1,005 logged calls in 6.5 s (issue 15)."""
        rate = agreement.access_per_minute
        known = self._per_grant.get(access.partner_id)
        if known is None or known[0] != rate:
            what = f"accesses by {access.partner_id} for one person (agreement: {rate}/minute)"
            known = (rate, RateLimiter(self.clock, rate / 60, rate, what))
            self._per_grant[access.partner_id] = known
        known[1].hit(access.grant_id or access.user_id or "")

    def link_url(self, token: str) -> str:
        return f"{self.base_url}/s/{token}"

    async def create_intent(
        self,
        access: PartnerAccess,
        title: str,
        url: str,
        image_url: str | None,
        description: str | None,
    ) -> Created:
        """A partner suggests something to share; it goes only to the user's own devices."""
        if access.user_id is None:
            raise InvalidInput("share intents need a user's token", code="user_token_required")
        agreement, _ = await self.partners.agreement(access.partner_id)
        self._limit(access, agreement)
        _check_text("title", title, MAX_TITLE)
        _check_url("url", url)
        _check_shared_url("url", url)
        if not agreement.allows_link(url):
            raise InvalidInput(
                "the URL's domain is not in this partner's agreement "
                f"({', '.join(agreement.link_domains)})",
                code="link_domain_not_allowed",
            )
        if image_url is not None:
            _check_url("image_url", image_url)
            _check_shared_url("image_url", image_url)
            if not agreement.allows_link(image_url):
                raise InvalidInput(
                    "the image URL's domain is not in this partner's agreement",
                    code="link_domain_not_allowed",
                )
        if description is not None:
            _check_text("description", description, MAX_DESCRIPTION)
        now = self.clock.now_ms()
        intent_id = "si_" + secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(16)
        intent = IntentRow(
            intent_id,
            access.partner_id,
            access.user_id,
            title,
            url,
            image_url,
            description,
            now,
            now + INTENT_SECONDS * 1000,
            None,
            None,
            0,
        )
        link = LinkRow(token, intent_id, access.partner_id, url, now, now + LINK_SECONDS * 1000)
        about = await self.log.commit(access.user_id)
        entry = access_entry(
            access.partner_id,
            "share:intent",
            "POST /v1/partner/share-intents",
            about.subject,
            "share_intent",
            1,
            now,
        )
        event = {
            "intent_id": intent_id,
            "partner": access.partner_id,
            "partner_name": agreement.name,
            "title": title,
            "url": url,
            "link": self.link_url(token),
            "image_url": image_url,
            "description": description,
            "expires_at": intent.expires_at,
        }
        index = await self.store.create(intent, link, encode_entry(entry), about, event)
        self._logged()
        return Created(intent_id, intent.expires_at, index)

    async def profile(self, access: PartnerAccess) -> tuple[dict[str, str | None], int]:
        """``profile:basic``: display name and pairwise id; the access is logged first."""
        if access.user_id is None:
            raise InvalidInput("this endpoint needs a user's token", code="user_token_required")
        agreement, _ = await self.partners.agreement(access.partner_id)
        self._limit(access, agreement)
        now = self.clock.now_ms()
        about = await self.log.commit(access.user_id)
        entry = access_entry(
            access.partner_id,
            "profile:basic",
            "GET /v1/partner/me",
            about.subject,
            "profile",
            1,
            now,
        )
        index = await self.log.append(entry, about)
        name = await self.accounts.display_name(access.user_id)
        pairwise = await self.partners.pairwise_id(access.partner_id, access.user_id)
        return {"id": pairwise, "display_name": name}, index

    def _logged(self) -> None:
        if self.on_logged is not None:
            self.on_logged()

    async def pending(self, user_id: str) -> list[tuple[IntentRow, str]]:
        return [
            (intent, self.link_url(token) if token else "")
            for intent, token in await self.store.pending(user_id, self.clock.now_ms())
        ]

    async def complete(self, user_id: str, intent_id: str, recipients: int) -> None:
        if not 1 <= recipients <= MAX_RECIPIENTS:
            raise InvalidInput(f"recipients is 1 to {MAX_RECIPIENTS}", code="invalid_recipients")
        intent = await self.store.intent(intent_id)
        if intent is None or intent.user_id != user_id:
            raise NotFound("no such share intent", code="intent_not_found")
        if intent.completed_at is not None:
            raise Conflict("this share intent was already completed", code="intent_completed")
        if intent.expires_at <= self.clock.now_ms():
            raise Conflict(
                "this share intent has expired (they last 24 hours)", code="intent_expired"
            )
        if not await self.store.complete(intent_id, user_id, recipients, self.clock.now_ms()):
            raise Conflict("this share intent was already completed", code="intent_completed")

    async def follow(self, token: str) -> str | None:
        """Count a click and return where to send the browser, or None for a dead link."""
        link = await self.store.link(token)
        now = self.clock.now_ms()
        if link is None or link.expires_at <= now:
            return None
        try:
            agreement, _ = await self.partners.agreement(link.partner_id)
        except NotFound:
            return None
        if not agreement.allows_link(link.url):  # the agreement changed: never redirect outside it
            return None
        await self.store.click(token, link.partner_id, now)
        return shared_url(link.url)  # a link made before the rule loses its per-person parts


def _check_text(name: str, value: str, limit: int) -> None:
    if not value.strip():
        raise InvalidInput(f"{name} must not be empty", code="invalid_input")
    if len(value) > limit:
        raise InvalidInput(f"{name} is at most {limit} characters", code="field_too_long")


def shared_url(url: str) -> str:
    """``url`` without its query string and fragment (see ``_check_shared_url``)."""
    if "?" not in url and "#" not in url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _check_shared_url(name: str, value: str) -> None:
    """A URL shown to or followed by other people carries no per-person part we can see.

    Every recipient of one share follows the same ``/s/`` link, and the redirect (and the
    card's image) is fetched from the partner's own server: a query such as ``?u=8f2…``
    made for one person would tell the partner whenever that person's share is clicked or
    shown, around the noisy aggregate reports. So the URL names an item only: no query
    string, no fragment, no credentials, and no port (a port is 16 bits to spend on a
    person) except on a loopback host, for development."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and parts.hostname in _LOOPBACK:
        port = None  # a partner app on this machine, in development
    if "?" in value or "#" in value or port is not None:
        raise InvalidInput(
            f"{name} must name an item only: no query string, fragment or port (they could "
            "carry a per-person tracking value, see docs/partners.md)",
            code="share_url_not_allowed",
        )


def _check_url(name: str, value: str) -> None:
    if len(value) > MAX_URL:
        raise InvalidInput(f"{name} is at most {MAX_URL} characters", code="field_too_long")
    parts = urlsplit(value)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username
        or parts.password
    ):
        raise InvalidInput(f"{name} must be an http(s) URL without credentials", code="invalid_url")
