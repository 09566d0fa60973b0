"""Integers too big for SQL never reach the database: a 4xx problem, not a 500.

PostgreSQL ``BIGINT`` and SQLite ``INTEGER`` are signed 64-bit. An index, size, sequence
number or limit of 2**63 or more used to reach the driver from the log's proof queries and
cosignature body (SQLite ``OverflowError``, asyncpg "out of int64 range": 500s). Each
endpoint class is played against a real server process on SQLite and on PostgreSQL:
query parameters (both the fast path and FastAPI's route), JSON bodies, and the schema
sweep that keeps every integer parameter of the API bounded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clearpost.core.limits import MAX_JSON_INT, MAX_SQL_INT
from clearpost.core.tlog import Cosigner, cosign
from clearpost.core.tlog.note import parse_note_unverified
from clearpost.server.services.sync import encode_cursor
from tests.support import api
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.timeout(90)

TOO_BIG = 2**63


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["detail"].strip() and body["title"].strip() and body["type"].endswith(code)
    return body


def assert_no_crash(server: ServerProcess) -> None:
    log = server.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


async def checkpoint_text(client: httpx.AsyncClient, least: int) -> str:
    """The text of the first checkpoint with at least ``least`` entries."""
    for _ in range(100):
        r = await client.get("/v1/log/checkpoint")
        if r.status_code == 200:
            text, _ = parse_note_unverified(r.text)
            if int(text.splitlines()[1]) >= least:
                return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"the log signed no checkpoint of {least} entries or more")


QUERIES = [
    # (path and query, status, code); the first two are the ones issue 14 names
    (f"/v1/log/proof/inclusion?index=0&size={TOO_BIG}", 400, "invalid_parameter"),
    ("/v1/log/proof/consistency?from=99999999999999999999&to=1", 400, "invalid_parameter"),
    (f"/v1/log/proof/inclusion?index={TOO_BIG}&size=1", 400, "invalid_parameter"),
    (f"/v1/log/proof/inclusion?size={TOO_BIG}&index=0", 400, "invalid_parameter"),
    (f"/v1/log/proof/consistency?from=1&to={TOO_BIG}", 400, "invalid_parameter"),
    (f"/v1/log/proof/consistency?from={10**30}&to={10**30}", 400, "invalid_parameter"),
    (f"/v1/log/proof/inclusion?index=0&size={'9' * 5000}", 400, "invalid_parameter"),
    (f"/v1/log/entries?start=0&end={TOO_BIG}", 400, "invalid_parameter"),
    (f"/v1/log/entries?start={TOO_BIG}&end={TOO_BIG + 1}", 400, "invalid_parameter"),
    (f"/v1/log/checkpoint?cosigned={TOO_BIG}", 400, "invalid_parameter"),
    # at the bound: reaches SQL, finds no such checkpoint (fast path and FastAPI alike)
    (f"/v1/log/proof/inclusion?index=0&size={MAX_SQL_INT}", 422, "invalid_tree_size"),
    (f"/v1/log/proof/inclusion?size={MAX_SQL_INT}&index=%30", 422, "invalid_tree_size"),
    (f"/v1/log/proof/consistency?from=1&to={MAX_SQL_INT}", 422, "invalid_tree_size"),
    (f"/v1/log/proof/consistency?from={MAX_SQL_INT}&to=1", 422, "invalid_tree_size"),
    (f"/v1/log/entries?start={MAX_SQL_INT - 1}&end={MAX_SQL_INT}", 422, "invalid_range"),
]


async def test_query_parameters_too_big_for_sql(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice", otks=0)
        bob = await api.user(client, "bob", otks=0)
        conv = await api.conversation(client, alice, "direct", bob)
        size = int((await checkpoint_text(client, 2)).splitlines()[1])
        for query, status, code in QUERIES:
            assert_problem(await client.get(query), status, code)
        # the log still answers real proofs after all that
        r = await client.get(f"/v1/log/proof/inclusion?index=0&size={size}")
        assert r.status_code == 200, r.text

        # authenticated queries: message history and sync
        h = alice.headers
        for query in (
            f"/v1/conversations/{conv}/messages?after={TOO_BIG}",
            f"/v1/conversations/{conv}/messages?limit={TOO_BIG}",
        ):
            assert_problem(await client.get(query, headers=h), 400, "invalid_parameter")
        since = encode_cursor(TOO_BIG)
        r = await client.get(f"/v1/sync?since={since}", headers=h)
        assert_problem(r, 400, "invalid_cursor")
        r = await client.get(f"/v1/sync?timeout={TOO_BIG}", headers=h)  # clamped, not SQL
        assert r.status_code == 200, r.text
    assert_no_crash(server)


@pytest.fixture
def witnessed(tmp_path: Path, db_url: str) -> Any:
    """A server that keeps cosignatures from one witness, and that witness."""
    witness = Cosigner.generate("witness.example/w1")
    proc = start_server(tmp_path / "srv", db_url, {"CLEARPOST_LOG_WITNESSES": witness.vkey})
    try:
        yield proc, witness
    finally:
        proc.stop()


async def test_json_body_integers_too_big_for_sql(
    witnessed: tuple[ServerProcess, Cosigner],
) -> None:
    server, witness = witnessed
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        await api.user(client, "alice", otks=0)
        text = await checkpoint_text(client, 1)
        line = cosign(text, witness, int(time.time())).to_line().removesuffix("\n")
        for size in (TOO_BIG, MAX_JSON_INT + 1, 10**40):
            r = await client.post("/v1/log/cosignatures", json={"size": size, "cosignature": line})
            assert_problem(r, 422, "invalid_request")
        # the same line with the checkpoint's real size is kept
        size = int(text.splitlines()[1])
        r = await client.post("/v1/log/cosignatures", json={"size": size, "cosignature": line})
        assert r.status_code == 204, r.text

        alice = await api.login(client, "alice", keys=False)
        r = await client.post(
            "/v1/me/share-intents/si_x/complete",
            json={"recipients": TOO_BIG},
            headers=alice.headers,
        )
        assert_problem(r, 422, "invalid_request")
    assert_no_crash(server)


def test_every_integer_parameter_of_the_api_is_bounded(server: ServerProcess) -> None:
    """A sweep of the live OpenAPI: every integer query or path parameter and every integer
    body field has a maximum a 64-bit SQL integer can hold. (Bodies parsed by hand, such as
    keys and envelopes, carry no integer to SQL: see their validators.)"""
    schema = httpx.get(server.url + "/openapi.json").json()
    clamped = {("/v1/sync", "timeout")}  # capped at sync_timeout_max_ms; never reaches SQL
    unbounded = []

    def check(where: str, name: str, s: dict[str, Any]) -> None:
        if "$ref" in s:
            ref = s["$ref"].rsplit("/", 1)[1]
            s = schema["components"]["schemas"][ref]
        for option in s.get("anyOf", []):
            check(where, name, option)
        if s.get("type") == "integer" and s.get("maximum", TOO_BIG) > MAX_SQL_INT:
            unbounded.append(f"{where} {name}")
        for prop, sub in s.get("properties", {}).items():
            check(where, f"{name}.{prop}", sub)
        if "items" in s:
            check(where, f"{name}[]", s["items"])

    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if (path, p["name"]) not in clamped:
                    check(f"{method.upper()} {path}", p["name"], p.get("schema", {}))
            for media in op.get("requestBody", {}).get("content", {}).values():
                check(f"{method.upper()} {path}", "body", media.get("schema", {}))
    assert not unbounded, f"integers with no SQL-safe maximum: {unbounded}"
    assert any("/v1/log/proof/inclusion" in p for p in schema["paths"])  # the sweep saw them
