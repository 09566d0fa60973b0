"""The log, the device list and a partner's receipts together must not tell who is who.

StreamCo plays the attacker. It holds what it is given: its own receipts (the log indexes of
its accesses about Alice, from ``/v1/partner/me`` and the share-intent answer, body and
``Clearpost-Log-Index`` header), an ordinary account (Bob's) that can read anyone's device
list, and the public log. It tries every timing-free linking strategy we know to find any
*other* entry about Alice — her grant to WatchCo, WatchCo's accesses, her device changes —
and must find none. On the code before issue 15 the same attack linked every entry about
Alice (device entries carried the device id and keys beside one stable commitment).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson

from tests.support import partner
from tests.support.partner import World, approve, code_from, oauth_client
from tests.unit.client.partners import Partnered, partnered

WATCHCO = (
    partner.AGREEMENT.replace('id = "streamco"', 'id = "watchco"')
    .replace('name = "StreamCo"', 'name = "WatchCo"')
    .replace("streamco.example", "watchco.example")
)
GENERIC = {"type", "partner", "scope", "scopes", "endpoint", "data", "change", "reason", "v"}


def stable_values(entry: Any) -> set[str]:
    """Every string in an entry that could name a person, a device or a key (anything but
    the entry's kind, the partner, the scope words and the change)."""
    out: set[str] = set()
    if isinstance(entry, dict):
        for k, v in entry.items():
            if k not in GENERIC:
                out |= stable_values(v)
    elif isinstance(entry, list):
        for v in entry:
            out |= stable_values(v)
    elif isinstance(entry, str):
        out.add(entry)
    return out


async def public_log(w: Partnered) -> dict[int, dict[str, Any]]:
    await w.integrate()
    note = (await w.http.get("/v1/log/checkpoint")).text
    size = int(note.splitlines()[1])
    r = await w.http.get("/v1/log/entries", params={"start": 0, "end": size})
    assert r.status_code == 200, r.text
    return {i: orjson.loads(base64.b64decode(b)) for i, b in enumerate(r.json()["entries"])}


def attack(
    log: dict[int, dict[str, Any]], devices: list[dict[str, Any]], receipts: set[int]
) -> set[int]:
    """Every entry the attacker can tie to Alice, from her device list and the receipts."""
    known: set[str] = set()
    for d in devices:  # 1. her public device ids and keys
        known.add(d["device_id"])
        keys = d.get("device_keys") or {}
        known |= {str(k) for k in (keys.get("keys") or {}).values()}
    linked = set(receipts)  # 2. the entries the partner was told are about her
    while True:  # 3. equal commitments, ids or keys anywhere in an entry, to a fixpoint
        for i in linked:
            known |= stable_values(log[i])
        grown = {i for i, e in log.items() if stable_values(e) & known} | linked
        if grown == linked:
            return linked
        linked = grown


async def consent_watchco(w: Partnered) -> Any:
    """Alice also connects WatchCo, which then reads her profile twice."""
    version, secret = await w.services.partners.register(WATCHCO)
    world = World(w.http, version.partner_id, secret, httpx_transport(w))
    oauth = oauth_client(world)
    verifier = "v" * 48
    url, _ = oauth.create_authorization_url("http://test/oauth/authorize", code_verifier=verifier)
    code = code_from(await approve(w.http, url, "alice", partner.PASSWORD))["code"][0]
    await oauth.fetch_token("http://test/oauth/token", code=code, code_verifier=verifier)
    for _ in range(2):
        assert (await oauth.get("http://test/v1/partner/me")).status_code == 200
    return oauth


def httpx_transport(w: Partnered) -> Any:
    return w.http._transport  # the in-process app, as World expects


async def test_no_entry_about_alice_links_to_her(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        receipts: set[int] = set()
        for _ in range(2):  # StreamCo's own accesses about Alice: its receipts
            r = await w.streamco.get("http://test/v1/partner/me")
            assert r.status_code == 200, r.text
            receipts |= {int(r.json()["log_index"]), int(r.headers["Clearpost-Log-Index"])}
            receipts.add(int((await w.suggest())["log_index"]))
        watchco = await consent_watchco(w)
        await watchco.aclose()
        await w.bob.transport.request("GET", "/v1/users/@bob:clearpost.localhost/devices")
        path = "/v1/users/@alice:clearpost.localhost/devices"
        devices = (await w.bob.transport.request("GET", path))["devices"]
        assert devices and devices[0]["device_keys"]
        log = await public_log(w)
        truth = {int(e["index"]) for e in (await w.alice.transport.my_log_entries())["entries"]}
        assert receipts < truth  # the receipts are about Alice; she has other entries too
        others = truth - receipts
        kinds = sorted({log[i]["type"] for i in others})
        assert kinds == ["access", "grant"], kinds  # device keys: in the key directory

        linked = attack(log, devices, receipts) - receipts
        right = linked & others
        print(
            f"\nlinked {len(right)} of Alice's {len(others)} other entries ({len(linked)} guesses)"
        )
        assert right == set(), f"the attacker tied entries {sorted(right)} to Alice"
        # and no two entries about anyone share a subject commitment
        subjects = [e["subject"] for e in log.values() if "subject" in e]
        assert len(subjects) == len(set(subjects))
