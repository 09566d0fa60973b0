"""The scope catalogue: what each partner scope means in plain words and what it opens.

This is data, published at ``GET /v1/scopes`` and logged (``scopes`` entry) whenever it
changes. The router test walks every route of the app and checks that a partner token
reaches only the routes listed here for one of its scopes. There is deliberately no
scope that reads messages, conversations, contacts or device lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CATALOGUE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    description: str
    endpoints: tuple[str, ...]
    """``METHOD /path`` templates this scope opens, exactly as the app routes them."""
    grant: str
    """``user`` (authorization code, the user consents) or ``partner`` (client credentials)."""


SCOPES: dict[str, Scope] = {
    s.name: s
    for s in (
        Scope(
            "profile:basic",
            "See your display name and an ID for you that is different for every app, "
            "so apps cannot match you up with each other.",
            ("GET /v1/partner/me",),
            "user",
        ),
        Scope(
            "share:intent",
            "Suggest something for you to share with friends. The suggestion goes only to "
            "your own devices; you decide whether to share it and with whom, and the app "
            "never learns who you sent it to.",
            ("POST /v1/partner/share-intents",),
            "user",
        ),
        Scope(
            "reports:read",
            "The app reads its own aggregate, noise-protected reports on shares and clicks. "
            "No report names or counts any single person.",
            ("GET /v1/partner/reports",),
            "partner",
        ),
    )
}

USER_SCOPES = frozenset(n for n, s in SCOPES.items() if s.grant == "user")
PARTNER_SCOPES = frozenset(n for n, s in SCOPES.items() if s.grant == "partner")


def catalogue() -> dict[str, Any]:
    """The catalogue as published (and logged)."""
    return {
        "version": CATALOGUE_VERSION,
        "scopes": [
            {
                "name": s.name,
                "description": s.description,
                "endpoints": list(s.endpoints),
                "grant": s.grant,
            }
            for s in SCOPES.values()
        ],
    }


def endpoints_for(scopes: frozenset[str] | set[str]) -> frozenset[str]:
    return frozenset(e for name in scopes if name in SCOPES for e in SCOPES[name].endpoints)
