"""A partner's agreement as a page a person can read (``GET /agreements/{partner_id}``).

The consent page and the web app's connected-apps page link here instead of the raw JSON
(``GET /v1/agreements/{partner_id}``, still linked for anyone who wants the exact bytes).
Everything shown comes from the published agreement versions; the scopes are described by
the public scope catalogue, in the same words as on the consent page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson

from clearpost.core.partners.scopes import SCOPES
from clearpost.web.pages import esc, render

__all__ = ["agreement_page"]


def agreement_page(name: str, partner_id: str, versions: Sequence[Any]) -> str:
    """The page for one partner; ``versions`` are its ``AgreementVersion`` rows, oldest
    first (each with ``version``, ``body``, ``log_index``, ``created_at``)."""
    current = versions[-1]
    a = orjson.loads(current.body)
    user = [s for s in a.get("scopes", []) if s in SCOPES and SCOPES[s].grant == "user"]
    own = [s for s in a.get("scopes", []) if s in SCOPES and SCOPES[s].grant == "partner"]
    return render(
        "agreement",
        title=f"{name}'s agreement",
        partner=name,
        partner_id=partner_id,
        homepage=str(a.get("homepage", "")),
        version=str(current.version),
        published=_date(current.created_at),
        log_index=str(current.log_index),
        log_end=str(current.log_index + 1),
        purposes_html=_items(a.get("purposes", [])),
        user_scopes_html=_scopes(user) or "<li>Nothing.</li>",
        own_scopes_html=_scopes(own) or "<li>Nothing.</li>",
        retention=str(a.get("retention", "")),
        links_html=_items(a.get("link_domains", [])),
        reports=_reports(a),
        contact=str(a.get("contact", "")),
        history_html="".join(
            f"<li>Version {v.version}, published {esc(_date(v.created_at))}, "
            f'<a href="/v1/log/entries?start={v.log_index}&amp;end={v.log_index + 1}">'
            f"log entry {v.log_index}</a></li>"
            for v in reversed(versions)
        ),
    )


def _items(values: Sequence[Any]) -> str:
    return "".join(f"<li>{esc(str(v))}</li>" for v in values)


def _scopes(names: Sequence[str]) -> str:
    return "".join(
        f'<li><span class="scope-name">{esc(n)}</span><br>{esc(SCOPES[n].description)}</li>'
        for n in names
    )


def _reports(a: dict[str, Any]) -> str:
    days = a.get("report_cadence_days", 14)
    eps = a.get("epsilon_per_period")
    threshold = a.get("suppression_threshold")
    out = (
        f"Every {days} days {a.get('name', 'the app')} may read one report of how often its "
        f"suggestions were shared and clicked, counted over everyone, with random noise added "
        f"(privacy budget ε = {eps} per report"
    )
    if a.get("epsilon_per_year") is not None:
        out += f", at most {a['epsilon_per_year']} a year"
    out += ")."
    if threshold is not None:
        out += f" A count below {threshold} is not published."
    if a.get("rollup_days"):
        out += f" Also a roll-up report every {a['rollup_days']} days (ε = {a['rollup_epsilon']})."
    return out


def _date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%d %B %Y, %H:%M UTC")
