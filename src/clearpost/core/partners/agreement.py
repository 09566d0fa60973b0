"""Partner agreements: parsed strictly from TOML, published and logged before they apply."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from clearpost.core.errors import InvalidInput
from clearpost.core.partners.scopes import SCOPES

PARTNER_ID_RE = re.compile(r"\A[a-z][a-z0-9-]{1,31}\Z")  # \Z: $ allows a final newline
_DOMAIN_RE = re.compile(
    r"\A(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z|\Alocalhost\Z"
)


@dataclass(frozen=True, slots=True)
class Agreement:
    partner_id: str
    name: str
    homepage: str
    redirect_uris: tuple[str, ...]
    link_domains: tuple[str, ...]
    scopes: tuple[str, ...]
    purposes: tuple[str, ...]
    retention: str
    report_cadence_days: int
    epsilon_per_period: float
    suppression_threshold: int
    max_shares_per_item: int
    max_clicks_per_share: int
    contact: str
    access_per_minute: int = 60
    """Logged accesses one grant (one person's consent) may make per minute (issue 15)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def allows_link(self, url: str) -> bool:
        """True for an http(s) URL whose host is a link domain or a subdomain of one."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return parts.scheme in ("https", "http") and any(
            host == d or host.endswith("." + d) for d in self.link_domains
        )


def _str(data: dict[str, Any], key: str, max_len: int = 500) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"agreement field {key!r} must be a non-empty string (≤{max_len})")
    return value.strip()


def _list(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"agreement field {key!r} must be a non-empty list of strings")
    if len(value) > 50:
        raise InvalidInput(f"agreement field {key!r} has more than 50 items")
    return tuple(value)


def _number(data: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidInput(f"agreement field {key!r} must be a number in [{lo}, {hi}]")
    return float(value)


_FIELDS = {
    "id",
    "name",
    "homepage",
    "redirect_uris",
    "link_domains",
    "scopes",
    "purposes",
    "retention",
    "report_cadence_days",
    "epsilon_per_period",
    "suppression_threshold",
    "max_shares_per_item",
    "max_clicks_per_share",
    "contact",
    "access_per_minute",
}


def parse_agreement(text: str) -> Agreement:
    """Parse and check an agreement file. Every problem is an InvalidInput naming the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"the agreement is not valid TOML: {exc}") from exc
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidInput(f"unknown agreement fields: {', '.join(sorted(unknown))}")
    partner_id = _str(data, "id", 32)
    if not PARTNER_ID_RE.match(partner_id):
        raise InvalidInput(
            "agreement 'id' is 2-32 characters: a-z, 0-9, '-', starting with a letter"
        )
    for uri in (redirects := _list(data, "redirect_uris")):
        parts = urlsplit(uri)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if (
            parts.scheme not in ("https", "http")
            or (parts.scheme == "http" and not local)
            or parts.fragment
        ):
            raise InvalidInput(
                f"redirect URI {uri!r} must be https (http only for loopback), no fragment"
            )
    domains = tuple(d.lower() for d in _list(data, "link_domains"))
    for d in domains:
        if not _DOMAIN_RE.match(d):
            raise InvalidInput(f"link domain {d!r} is not a domain name")
    scopes = _list(data, "scopes")
    unknown_scopes = set(scopes) - set(SCOPES)
    if unknown_scopes:
        raise InvalidInput(f"no such scope: {', '.join(sorted(unknown_scopes))}")
    homepage = _str(data, "homepage")
    if urlsplit(homepage).scheme not in ("https", "http"):
        raise InvalidInput("agreement 'homepage' must be an http(s) URL")
    return Agreement(
        partner_id=partner_id,
        name=_str(data, "name", 100),
        homepage=homepage,
        redirect_uris=redirects,
        link_domains=domains,
        scopes=tuple(sorted(set(scopes))),
        purposes=_list(data, "purposes"),
        retention=_str(data, "retention"),
        report_cadence_days=int(_number(data, "report_cadence_days", 14, 1, 366)),
        epsilon_per_period=_number(data, "epsilon_per_period", 1.0, 0.01, 10.0),
        suppression_threshold=int(_number(data, "suppression_threshold", 10, 0, 10_000)),
        max_shares_per_item=int(_number(data, "max_shares_per_item", 1, 1, 100)),
        max_clicks_per_share=int(_number(data, "max_clicks_per_share", 1, 1, 100)),
        contact=_str(data, "contact", 200),
        access_per_minute=int(_number(data, "access_per_minute", 60, 1, 6000)),
    )


def agreement_from_json(data: dict[str, Any]) -> Agreement:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Agreement(**values)
