"""Issue 15: anyone could add anyone to a group (2,000 groups around one person made their
unpaged conversation list 358 KB). A person may let nobody add them to groups, and the
conversation list is paged with a total."""

from __future__ import annotations

import httpx

from tests.support import api


async def test_a_person_can_let_nobody_add_them_to_groups(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    carol = await api.user(app_client, "carol")
    r = await app_client.get("/v1/me/settings", headers=bob.headers)
    assert r.json() == {"group_adds": "anyone"}
    r = await app_client.put("/v1/me/settings", json={"group_adds": "nobody"}, headers=bob.headers)
    assert r.status_code == 200 and r.json() == {"group_adds": "nobody"}
    body = {"kind": "group", "members": [bob.user_id, carol.user_id]}
    r = await app_client.post("/v1/conversations", json=body, headers=alice.headers)
    assert r.status_code == 403 and r.json()["code"] == "group_adds_refused", r.text
    r = await app_client.post(
        "/v1/conversations",
        json={"kind": "group", "members": [carol.user_id]},
        headers=alice.headers,
    )
    group = r.json()["conversation_id"]
    r = await app_client.post(
        f"/v1/conversations/{group}/members/{bob.user_id}", headers=alice.headers
    )
    assert r.status_code == 403 and r.json()["code"] == "group_adds_refused"
    assert (await app_client.get("/v1/conversations", headers=bob.headers)).json()[
        "conversations"
    ] == []
    # Bob may still start his own groups, and a direct conversation still works
    r = await app_client.post(
        "/v1/conversations", json={"kind": "group", "members": [carol.user_id]}, headers=bob.headers
    )
    assert r.status_code == 201
    r = await app_client.put("/v1/me/settings", json={"group_adds": "maybe"}, headers=bob.headers)
    assert r.status_code == 422
    assert carol


async def test_the_conversation_list_is_paged_with_a_total(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    made = []
    for _ in range(7):
        r = await app_client.post(
            "/v1/conversations",
            json={"kind": "group", "members": [bob.user_id]},
            headers=alice.headers,
        )
        made.append(r.json()["conversation_id"])
    seen: list[str] = []
    page = (await app_client.get("/v1/conversations?limit=3", headers=alice.headers)).json()
    assert page["total"] == 7 and len(page["conversations"]) == 3
    while True:
        seen += [c["conversation_id"] for c in page["conversations"]]
        if page["next"] is None:
            break
        page = (
            await app_client.get(
                "/v1/conversations",
                params={"limit": 3, "after": page["next"]},
                headers=alice.headers,
            )
        ).json()
    assert sorted(seen) == sorted(made) and len(set(seen)) == 7
    for params in ({"limit": 0}, {"limit": 501}, {"after": "junk"}):
        r = await app_client.get("/v1/conversations", params=params, headers=alice.headers)
        assert r.status_code == 400, (params, r.text)
