"""Partner agreements: parsed strictly from TOML, published and logged before they apply.

From Clearpost 0.2 an agreement also states the report bounds that were server settings
before (``max_items_per_user``, ``max_recipients_per_share``), the yearly privacy budget
(``epsilon_per_year``) and how each metric's epsilon is split (``report_totals_share``), so
the published agreement states everything that sets a report's noise. ``parse_agreement``
always writes them; agreements logged by earlier versions lack them and still verify: for
those the bounds come from the server settings and the other two from their defaults.

Also from Clearpost 0.2, an agreement may ask for a longer roll-up report (``rollup_days``,
for example 91 for a quarter) released from a budget of its own (``rollup_epsilon``). Both
are optional and absent by default; an agreement without them (any logged earlier) gets no
roll-ups. The default ``epsilon_per_year`` then covers the roll-ups as well as the periods.
"""

from __future__ import annotations

import math
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
    max_items_per_user: int | None = None
    """None only in agreements logged before 0.2: the server setting applies."""
    max_recipients_per_share: int | None = None
    """None only in agreements logged before 0.2: the server setting applies."""
    epsilon_per_year: float | None = None
    """None only in agreements logged before 0.2: ``default_epsilon_per_year`` applies."""
    report_totals_share: float = 0.5
    rollup_days: int | None = None
    """Days of a roll-up window (from 0.2); None: the agreement asks for no roll-ups."""
    rollup_epsilon: float | None = None
    """The epsilon each roll-up spends (from 0.2); set exactly when ``rollup_days`` is."""

    access_per_minute: int = 60
    """Logged accesses one grant (one person's consent) may make per minute (issue 15)."""

    @property
    def yearly_budget(self) -> float:
        """The most epsilon spent on periods and roll-ups that start in one calendar year
        (UTC)."""
        if self.epsilon_per_year is not None:
            return self.epsilon_per_year
        return default_epsilon_per_year(
            self.epsilon_per_period, self.report_cadence_days, self.rollup_epsilon, self.rollup_days
        )

    @property
    def scheduled_per_year(self) -> float:
        """The most epsilon the agreed schedule can spend on releases whose window starts in
        one calendar year (periods and roll-ups), before the yearly cap."""
        return default_epsilon_per_year(
            self.epsilon_per_period, self.report_cadence_days, self.rollup_epsilon, self.rollup_days
        )

    def to_json(self) -> dict[str, Any]:
        """The published form. The roll-up fields appear only when the agreement asks for
        a roll-up, so an agreement without one reads exactly as it did without them."""
        data = asdict(self)
        if self.rollup_days is None:
            del data["rollup_days"], data["rollup_epsilon"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def allows_link(self, url: str) -> bool:
        """True for an http(s) URL whose host is a link domain or a subdomain of one."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        return parts.scheme in ("https", "http") and any(
            host == d or host.endswith("." + d) for d in self.link_domains
        )


def default_epsilon_per_year(
    epsilon_per_period: float,
    cadence_days: int,
    rollup_epsilon: float | None = None,
    rollup_days: int | None = None,
) -> float:
    """Enough for every period that can start in a calendar year (``ceil(366 / cadence)``
    periods) and every roll-up (``ceil(366 / rollup_days)``), so the default never holds
    up a report on the agreed schedule."""
    total = epsilon_per_period * math.ceil(366 / cadence_days)
    if rollup_epsilon is not None and rollup_days is not None:
        total += rollup_epsilon * math.ceil(366 / rollup_days)
    return round(total, 9)


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


def _integer(data: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"agreement field {key!r} must be an integer in [{lo}, {hi}]")
    return value


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
    "max_items_per_user",
    "max_recipients_per_share",
    "epsilon_per_year",
    "report_totals_share",
    "rollup_days",
    "rollup_epsilon",
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
    cadence = int(_number(data, "report_cadence_days", 14, 1, 366))
    epsilon = _number(data, "epsilon_per_period", 1.0, 0.01, 10.0)
    rollup_days, rollup_epsilon = _rollup(data, cadence)
    per_year = _number(
        data,
        "epsilon_per_year",
        default_epsilon_per_year(epsilon, cadence, rollup_epsilon, rollup_days),
        max(epsilon, rollup_epsilon or 0.0),
        3660.0,
    )
    return Agreement(
        partner_id=partner_id,
        name=_str(data, "name", 100),
        homepage=homepage,
        redirect_uris=redirects,
        link_domains=domains,
        scopes=tuple(sorted(set(scopes))),
        purposes=_list(data, "purposes"),
        retention=_str(data, "retention"),
        report_cadence_days=cadence,
        epsilon_per_period=epsilon,
        suppression_threshold=int(_number(data, "suppression_threshold", 10, 0, 10_000)),
        max_shares_per_item=int(_number(data, "max_shares_per_item", 1, 1, 100)),
        max_clicks_per_share=int(_number(data, "max_clicks_per_share", 1, 1, 100)),
        contact=_str(data, "contact", 200),
        max_items_per_user=int(_integer(data, "max_items_per_user", 5, 1, 100)),
        max_recipients_per_share=int(_integer(data, "max_recipients_per_share", 10, 1, 1000)),
        epsilon_per_year=per_year,
        report_totals_share=_number(data, "report_totals_share", 0.5, 0.05, 0.95),
        rollup_days=rollup_days,
        rollup_epsilon=rollup_epsilon,
        access_per_minute=int(_number(data, "access_per_minute", 60, 1, 6000)),
    )


def _rollup(data: dict[str, Any], cadence: int) -> tuple[int | None, float | None]:
    """``rollup_days`` and ``rollup_epsilon``: both or neither. A roll-up is longer than a
    period (else it would be a second period report) and at most a year."""
    if "rollup_days" not in data and "rollup_epsilon" not in data:
        return None, None
    if "rollup_days" not in data or "rollup_epsilon" not in data:
        raise InvalidInput("a roll-up needs both 'rollup_days' and 'rollup_epsilon'")
    return (
        _integer(data, "rollup_days", 0, cadence + 1, 366),
        _number(data, "rollup_epsilon", 0.0, 0.01, 10.0),
    )


def agreement_from_json(data: dict[str, Any]) -> Agreement:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Agreement(**values)
