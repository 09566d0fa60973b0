"""The transparency log through the API, in-process: device entries, proofs, cosignatures."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson

from clearpost.core.tlog import (
    Checkpoint,
    Cosigner,
    Verifier,
    cosign,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from clearpost.core.tlog.entries import commitment, decode_entry
from tests.support import api


async def _checkpoint(client: httpx.AsyncClient, at_least: int) -> Checkpoint:
    key = (await client.get("/v1/log/key")).json()
    for _ in range(100):
        note = (await client.get("/v1/log/checkpoint")).text
        cp, _ = open_checkpoint(note, [Verifier.from_vkey(key["vkey"])], origin=key["origin"])
        if cp.size >= at_least:
            return cp
        await asyncio.sleep(0.05)
    raise AssertionError("the log was not integrated within 5 s")


async def test_device_keys_are_logged_and_the_user_can_prove_it(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    second = await api.login(app_client, "alice")
    await app_client.delete(f"/v1/devices/{second.device_id}", headers=alice.headers)
    cp = await _checkpoint(app_client, 3)

    mine = (await app_client.get("/v1/me/log-entries", headers=alice.headers)).json()
    key = (await app_client.get("/v1/log/key")).json()
    cp, _ = open_checkpoint(
        mine["checkpoint"], [Verifier.from_vkey(key["vkey"])], origin=key["origin"]
    )
    salt = base64.b64decode(mine["salt"])
    assert mine["subject"] == commitment(salt, alice.user_id)
    changes = []
    for item in mine["entries"]:
        body = base64.b64decode(item["entry"])
        entry = decode_entry(body)
        assert entry["subject"] == mine["subject"] and "alice" not in body.decode()
        proof = [base64.b64decode(h) for h in item["proof"]]
        verify_inclusion(leaf_hash(body), item["index"], cp.size, proof, cp.root_hash)
        changes.append((entry["device_id"], entry["change"]))
    assert changes == [
        (alice.device_id, "added"),
        (second.device_id, "added"),
        (second.device_id, "removed"),
    ]

    # the public view: all entries re-hash to the root, and the log only grew
    bodies = (await app_client.get("/v1/log/entries", params={"start": 0, "end": cp.size})).json()
    assert len(bodies["entries"]) == cp.size
    bob = await api.user(app_client, "bob")
    assert bob
    later = await _checkpoint(app_client, cp.size + 1)
    r = await app_client.get(
        "/v1/log/proof/consistency", params={"from": cp.size, "to": later.size}
    )
    proof = [base64.b64decode(h) for h in r.json()["hashes"]]
    verify_consistency(cp.size, later.size, cp.root_hash, later.root_hash, proof)


async def test_bad_proof_ranges_are_problems(app_client: httpx.AsyncClient) -> None:
    await api.user(app_client, "alice")
    cp = await _checkpoint(app_client, 1)
    cases = [
        ("/v1/log/proof/inclusion", {"index": cp.size, "size": cp.size}, "invalid_range"),
        ("/v1/log/proof/inclusion", {"index": 0, "size": cp.size + 5}, "invalid_tree_size"),
        ("/v1/log/proof/consistency", {"from": cp.size + 1, "to": cp.size}, "invalid_tree_size"),
        ("/v1/log/entries", {"start": 0, "end": cp.size + 1}, "invalid_range"),
        ("/v1/log/entries", {"start": 0, "end": 5000}, "invalid_range"),
        ("/v1/log/proof/inclusion", {"index": -1, "size": 1}, "invalid_parameter"),
    ]
    for path, params, code in cases:
        r = await app_client.get(path, params=params)
        assert r.status_code in (400, 422), (path, params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == code, (path, params, r.json())


async def test_only_configured_witnesses_can_cosign(app_client: httpx.AsyncClient) -> None:
    await api.user(app_client, "alice")
    cp = await _checkpoint(app_client, 1)
    stranger = Cosigner.generate("witness.example/stranger")
    line = cosign(cp.to_text(), stranger, 1_700_000_000).to_line()
    r = await app_client.post("/v1/log/cosignatures", json={"size": cp.size, "cosignature": line})
    assert r.status_code == 422 and r.json()["code"] == "unknown_witness"
    r = await app_client.post("/v1/log/cosignatures", json={"size": cp.size, "cosignature": "junk"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_cosignature"
    assert orjson.loads((await app_client.get("/v1/log/key")).content)["witnesses"] == []
