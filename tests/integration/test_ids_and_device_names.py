"""Issue 15: ids match as whole strings (``$`` also matched before a final newline, so
``"alice\\n"`` registered as a look-alike of ``@alice``), and device names are the owner's."""

from __future__ import annotations

import httpx
import pytest

from clearpost.core.errors import InvalidInput
from clearpost.core.partners.agreement import parse_agreement
from tests.support import api, partner


async def test_a_trailing_newline_is_not_part_of_any_id(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    for name in ("alice\n", "mallory\n", "bob\n"):
        r = await app_client.post("/v1/accounts", json={"username": name, "password": api.PASSWORD})
        assert r.status_code == 422 and r.json()["code"] == "invalid_username", (name, r.text)
    r = await app_client.post("/v1/login", json={"username": "alice\n", "password": api.PASSWORD})
    assert r.status_code == 401
    r = await app_client.get(f"/v1/users/{alice.user_id}%0A/devices", headers=alice.headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_user_id"
    r = await app_client.put(
        "/v1/to-device/m.room.encrypted/t1%0A", json={"messages": {}}, headers=alice.headers
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_txn_id", r.text


def test_agreement_ids_and_domains_are_whole_strings() -> None:
    old, new = 'link_domains = ["streamco.example"]', 'link_domains = ["streamco.example\\n"]'
    with pytest.raises(InvalidInput, match="is not a domain name"):
        parse_agreement(partner.AGREEMENT.replace(old, new))
    assert parse_agreement(partner.AGREEMENT).partner_id == "streamco"


async def test_device_names_are_shown_to_their_owner_only(app_client: httpx.AsyncClient) -> None:
    """Issue 15: "Bob's work laptop" was visible to every account."""
    r = await app_client.post("/v1/accounts", json={"username": "bob", "password": api.PASSWORD})
    assert r.status_code == 201
    r = await app_client.post(
        "/v1/login",
        json={"username": "bob", "password": api.PASSWORD, "device_name": "Bob's work laptop"},
    )
    bob = {"Authorization": f"Bearer {r.json()['access_token']}"}
    alice = await api.user(app_client, "alice")
    bob_id = r.json()["user_id"]
    seen = (await app_client.get(f"/v1/users/{bob_id}/devices", headers=alice.headers)).json()
    assert [d["display_name"] for d in seen["devices"]] == [None]
    own = (await app_client.get(f"/v1/users/{bob_id}/devices", headers=bob)).json()
    assert [d["display_name"] for d in own["devices"]] == ["Bob's work laptop"]
