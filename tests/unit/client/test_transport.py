"""Transport retries: what is retried, what is not, and how errors come out."""

from __future__ import annotations

import httpx
import pytest

from clearpost.client import ClientError
from clearpost.client.transport import Transport


def transport(handler: httpx.MockTransport, slept: list[float]) -> Transport:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    http = httpx.AsyncClient(transport=handler, base_url="http://server")
    return Transport(http, token="cpt_x", sleep=sleep)


async def test_busy_server_is_retried_after_its_retry_after() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return httpx.Response(429 if len(calls) == 1 else 503, headers={"Retry-After": "2"})
        return httpx.Response(200, json={"ok": True})

    slept: list[float] = []
    t = transport(httpx.MockTransport(handle), slept)
    assert await t.request("POST", "/v1/keys/claim", body={}, idempotent=False) == {"ok": True}
    assert calls == ["POST"] * 3 and slept == [2.0, 2.0]


async def test_a_lost_response_is_retried_only_when_repeating_is_harmless() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    slept: list[float] = []
    t = transport(httpx.MockTransport(handle), slept)
    with pytest.raises(ClientError) as caught:
        await t.request("POST", "/v1/conversations", body={}, idempotent=False)
    assert caught.value.code == "network_error" and slept == []  # maybe applied: not repeated
    with pytest.raises(ClientError):
        await t.request("PUT", "/v1/conversations/c/messages/t1", body={})
    assert len(slept) == t.attempts - 1  # the same txn id again: repeated


async def test_problem_bodies_become_typed_errors() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404,
            json={
                "type": "urn:clearpost:problem:user_not_found",
                "title": "Not Found",
                "status": 404,
                "detail": "no such user",
                "code": "user_not_found",
            },
            headers={"Content-Type": "application/problem+json"},
        )

    t = transport(httpx.MockTransport(handle), [])
    with pytest.raises(ClientError) as caught:
        await t.user_devices("@nobody")
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        "user_not_found",
        404,
        "no such user",
    )


async def test_stream_url_follows_the_http_base() -> None:
    t = Transport(httpx.AsyncClient(base_url="https://chat.example/prefix/"))
    assert t.stream_url(None) == "wss://chat.example/prefix/v1/stream"
    assert (
        t.stream_url("cp1_AAAAAAAAAAE")
        == "wss://chat.example/prefix/v1/stream?since=cp1_AAAAAAAAAAE"
    )


def _outage(calls: list[str], down_for: int) -> httpx.MockTransport:
    """A server whose database is down for the first ``down_for`` requests."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if len(calls) <= down_for:
            return httpx.Response(
                503,
                json={"code": "database_unavailable", "detail": "the database cannot be reached"},
                headers={"Retry-After": "2", "Content-Type": "application/problem+json"},
            )
        return httpx.Response(200, json={"seq": 7, "sent_at": 1})

    return httpx.MockTransport(handle)


async def test_a_send_rides_out_a_database_outage_with_the_same_transaction_id() -> None:
    calls: list[str] = []
    slept: list[float] = []
    t = transport(_outage(calls, down_for=12), slept)  # 24 s of outage: past the 5 attempts
    out = await t.send_message("c1", "txn-1", {"algorithm": "m.megolm.v1.aes-sha2"})
    assert out["seq"] == 7
    assert calls == ["PUT /v1/conversations/c1/messages/txn-1"] * 13
    assert slept == [2.0] * 12  # the server's Retry-After each time


async def test_an_outage_longer_than_the_patience_fails_with_the_servers_code() -> None:
    calls: list[str] = []
    slept: list[float] = []
    t = transport(_outage(calls, down_for=1000), slept)
    with pytest.raises(ClientError) as caught:
        await t.sync(None)
    assert (caught.value.code, caught.value.status) == ("database_unavailable", 503)
    assert sum(slept) <= t.outage_patience and len(calls) == 31


async def test_a_request_that_is_not_idempotent_gets_only_the_usual_attempts() -> None:
    calls: list[str] = []
    slept: list[float] = []
    t = transport(_outage(calls, down_for=1000), slept)
    with pytest.raises(ClientError) as caught:
        await t.request("POST", "/v1/keys/claim", body={}, idempotent=False)
    assert caught.value.code == "database_unavailable" and len(calls) == t.attempts
