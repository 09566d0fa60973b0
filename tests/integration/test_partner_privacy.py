"""Partners learn no more than their scopes say (issue 15): no username as display name, no
per-person parts in share URLs, and a bound on how fast one grant adds log entries."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
from sqlalchemy import update

from clearpost.storage.schema import share_links
from tests.support import partner
from tests.unit.client.partners import WATCHING, Partnered, partnered

ME = "http://test/v1/partner/me"
INTENTS = "http://test/v1/partner/share-intents"


def headers(w: Partnered) -> dict[str, str]:
    return w.alice.transport.auth_headers()


async def test_partners_see_the_chosen_display_name_never_the_username(tmp_path: Path) -> None:
    """Before: ``display_name`` was ``"alice"``, the global username, for every partner."""
    async with partnered(tmp_path) as w:
        me = await w.streamco.get(ME)
        assert me.status_code == 200 and me.json()["display_name"] is None
        assert "alice" not in me.text
        mine = await w.http.get("/v1/me/profile", headers=headers(w))
        assert mine.json() == {"display_name": None}

        r = await w.http.put(
            "/v1/me/profile", json={"display_name": "  Night owl "}, headers=headers(w)
        )
        assert r.status_code == 200 and r.json() == {"display_name": "Night owl"}
        assert (await w.streamco.get(ME)).json()["display_name"] == "Night owl"
        for bad, code in (
            ("x" * 65, "invalid_display_name"),
            ("line\nbreak", "invalid_display_name"),
            ("x" * 201, "invalid_request"),
        ):
            r = await w.http.put("/v1/me/profile", json={"display_name": bad}, headers=headers(w))
            assert r.status_code == 422 and r.json()["code"] == code, (bad, r.text)
        assert (await w.streamco.get(ME)).json()["display_name"] == "Night owl"
        r = await w.http.put("/v1/me/profile", json={"display_name": None}, headers=headers(w))
        assert r.json() == {"display_name": None}
        assert (await w.streamco.get(ME)).json()["display_name"] is None
        anonymous = await w.http.put("/v1/me/profile", json={"display_name": "x"})
        assert anonymous.status_code == 401


async def test_share_urls_carry_no_per_person_part(tmp_path: Path) -> None:
    """Before: ``?u=<person>`` was accepted and kept through the ``/s/`` redirect."""
    async with partnered(tmp_path) as w:
        base = WATCHING["url"]
        for fields in (
            {"url": base + "?u=8f2a91"},
            {"url": base + "?"},
            {"url": base + "#u=8f2a91"},
            {"url": "https://streamco.example:8443/watch/x"},
            {"url": "https://streamco.example:99999/watch/x"},
            {"image_url": "https://img.streamco.example/p.jpg?for=alice"},
        ):
            r = await w.streamco.post(INTENTS, json={**WATCHING, **fields})
            assert r.status_code == 422, (fields, r.text)
            assert r.json()["code"] == "share_url_not_allowed", r.text
            assert "no query string" in r.json()["detail"]
        made = await w.suggest()
        assert made["intent_id"]
        (pending,) = (await w.alice.transport.request("GET", "/v1/me/share-intents"))[
            "share_intents"
        ]
        token = pending["link"].rsplit("/", 1)[1]
        r = await w.http.get(f"/s/{token}")
        assert r.status_code == 302 and r.headers["location"] == base
        # a link made before the rule: its query never reaches the partner
        async with w.services.db.write() as conn:
            await conn.execute(
                update(share_links)
                .where(share_links.c.token == token)
                .values(url=base + "?u=8f2a91#x")
            )
        r = await w.http.get(f"/s/{token}")
        assert r.status_code == 302 and r.headers["location"] == base


async def test_one_grant_adds_access_entries_no_faster_than_its_agreement_says(
    tmp_path: Path,
) -> None:
    """Before: 1,005 logged calls in 6.5 s; now at most ``access_per_minute``, a minute's
    worth at once, and a refused call is not logged."""
    async with partnered(tmp_path) as w:
        await w.services.partners.update(partner.AGREEMENT + "access_per_minute = 5\n")
        agreement = (await w.http.get("/v1/agreements/streamco")).json()["versions"][-1]
        assert agreement["agreement"]["access_per_minute"] == 5
        before = (await w.http.get("/v1/me/log-entries", headers=headers(w))).json()["total"]
        for _ in range(5):
            assert (await w.streamco.get(ME)).status_code == 200
        refused = await w.streamco.get(ME)
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert float(refused.headers["retry-after"]) > 0
        r = await w.streamco.post(INTENTS, json=WATCHING)
        assert r.status_code == 429
        mine = (await w.http.get("/v1/me/log-entries", headers=headers(w))).json()
        assert mine["total"] == before + 5
        last = orjson.loads(base64.b64decode(mine["entries"][-1]["entry"]))
        assert last["type"] == "access" and last["endpoint"] == "GET /v1/partner/me"
