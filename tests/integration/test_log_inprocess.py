"""The transparency log through the API, in-process: device entries, proofs, cosignatures."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson

from clearpost.core.keydir.proofs import Bundle, check_history
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
from clearpost.core.tlog.entries import decode_entry
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


async def test_device_keys_are_in_the_directory_and_the_user_can_prove_it(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    second = await api.login(app_client, "alice")
    await app_client.delete(f"/v1/devices/{second.device_id}", headers=alice.headers)
    await app_client.app.state.services.keydir.wait_published("@alice")  # type: ignore[attr-defined]
    await app_client.app.state.services.log.integrate_once()  # type: ignore[attr-defined]
    cp = await _checkpoint(app_client, 3)

    # device changes are not log entries about Alice any more (issue 17) ...
    mine = (await app_client.get("/v1/me/log-entries", headers=alice.headers)).json()
    assert mine["entries"] == []
    # ... but versions of her directory label, each proven under a logged epoch root
    vrf = base64.b64decode((await app_client.get("/v1/keydir/key")).json()["vrf_public_key"])
    answer = (await app_client.get("/v1/me/keydir/devices", headers=alice.headers)).json()
    root = bytes.fromhex(decode_entry(base64.b64decode(answer["entry"]))["root"])
    history = check_history(vrf, root, Bundle.from_json(answer))
    assert [[d["device_id"] for d in orjson.loads(v)] for v in history] == [
        [alice.device_id],
        sorted([alice.device_id, second.device_id]),
        [alice.device_id],
    ]
    key = (await app_client.get("/v1/log/key")).json()
    cp, _ = open_checkpoint(
        answer["checkpoint"], [Verifier.from_vkey(key["vkey"])], origin=key["origin"]
    )
    proof = [base64.b64decode(h) for h in answer["inclusion"]]
    body = base64.b64decode(answer["entry"])
    verify_inclusion(leaf_hash(body), answer["log_index"], cp.size, proof, cp.root_hash)
    assert "alice" not in body.decode() and alice.device_id not in body.decode()

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


async def test_proof_fast_path_answers_exactly_as_the_fastapi_route(
    app_client: httpx.AsyncClient,
) -> None:
    """Well-formed proof requests are answered before FastAPI (``fastpath.py``); an extra
    query parameter sends the same request through FastAPI, which ignores it. Both must
    give the same status, type and body, for good proofs and for refused ones."""
    await api.user(app_client, "alice")
    await api.user(app_client, "bob")
    cp = await _checkpoint(app_client, 2)
    cases = [
        ("/v1/log/proof/inclusion", {"index": 0, "size": cp.size}),
        ("/v1/log/proof/inclusion", {"size": cp.size, "index": cp.size - 1}),
        ("/v1/log/proof/inclusion", {"index": cp.size, "size": cp.size}),  # invalid_range
        ("/v1/log/proof/inclusion", {"index": 0, "size": cp.size + 7}),  # invalid_tree_size
        ("/v1/log/proof/consistency", {"from": 1, "to": cp.size}),
        ("/v1/log/proof/consistency", {"from": cp.size, "to": cp.size}),
        ("/v1/log/proof/consistency", {"from": cp.size + 1, "to": cp.size}),
    ]
    for path, params in cases:
        fast = await app_client.get(path, params=params)
        routed = await app_client.get(path, params={**params, "via": "fastapi"})
        assert fast.status_code == routed.status_code, (path, params, fast.text, routed.text)
        assert fast.headers["content-type"] == routed.headers["content-type"]
        assert fast.json() == routed.json(), (path, params)
    good = await app_client.get("/v1/log/proof/inclusion", params={"index": 0, "size": cp.size})
    assert good.status_code == 200 and good.json()["index"] == 0
    # odd spellings are not the fast path's business: they fall through to FastAPI, so
    # whatever pydantic makes of them, both routes agree; nonsense is a 400 problem
    for query in (
        "index=1.0&size=2",
        "index=%2B1&size=2",
        "index=1&index=1&size=2",
        "index=99999999999999999999&size=2",
        "index=%31&size=2",  # percent-encoded digit
        "%69ndex=1&size=2",  # percent-encoded name
        "index=1&size=2&",
        "index=1+&size=2",
    ):
        r = await app_client.get("/v1/log/proof/inclusion?" + query)
        routed = await app_client.get("/v1/log/proof/inclusion?" + query + "&via=fastapi")
        assert (r.status_code, r.json()) == (routed.status_code, routed.json()), query
    for query in (
        "index=abc&size=2",
        "index=-1&size=2",
        "size=2",
    ):
        r = await app_client.get("/v1/log/proof/inclusion?" + query)
        assert r.status_code == 400 and r.json()["code"] == "invalid_parameter", (query, r.text)


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
