"""Metrics on their own port, the access log in JSON lines, and the page at ``/``, against a
real ``clearpost serve``. No line of the server's output may carry a token, a password, a
ciphertext, a conversation id or a user id from a path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support import api
from tests.support.server import ServerProcess, free_port, start_server


def _scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_access_log_and_no_secrets_in_logs(tmp_path: Path, db_url: str) -> None:
    metrics_port = free_port()
    server: ServerProcess = start_server(
        tmp_path / "srv",
        db_url,
        {
            "CLEARPOST_METRICS_PORT": str(metrics_port),
            "CLEARPOST_ACCESS_LOG": "true",
            "CLEARPOST_LOG_FORMAT": "json",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            alice = await api.user(http, "alice")
            bob = await api.user(http, "bob")
            conv = await api.conversation(http, alice, "direct", bob)
            envelope = alice.megolm(b"a message nobody else may read")
            sent = await http.put(
                f"/v1/conversations/{conv}/messages/txn-1", json=envelope, headers=alice.headers
            )
            assert sent.status_code == 200, sent.text
            await api.sync(http, bob)
            assert (await http.get("/metrics")).status_code == 404  # not on the API port
            home = await http.get("/")
            assert home.status_code == 200 and "Clearpost is running" in home.text
            assert 'href="/docs"' in home.text and 'href="/v1/log/checkpoint"' in home.text

        samples = _scrape(metrics_port)
        route = "/v1/conversations/{conversation_id}/messages/{txn_id}"
        assert (
            samples[
                f'clearpost_http_request_duration_seconds_count{{method="PUT",route="{route}",'
                'status="200"}'
            ]
            == 1
        )
        assert any('route="/v1/login"' in name for name in samples)
        assert samples["clearpost_messages_sent_total"] == 1
        assert samples["clearpost_log_entries"] >= 2  # both devices' keys
        assert samples["clearpost_sync_waiters"] == 0
        assert "clearpost_log_sequencer_lag_entries" in samples
        assert "clearpost_reports_released_total" in samples
        assert samples["clearpost_keydir_leaves"] >= 2  # both accounts' devices, at least
        assert 0 <= samples["clearpost_keydir_epoch_age_seconds"] < 60
    finally:
        server.stop()

    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records[0]["message"].startswith("Clearpost on http://127.0.0.1:")
    accessed = [r for r in records if r["logger"] == "clearpost.access"]
    assert {(r["method"], r["route"], r["status"]) for r in accessed} >= {
        ("POST", "/v1/accounts", 201),
        ("PUT", route, 200),
        ("GET", "/v1/sync", 200),
    }
    output = server.log()
    secrets = [
        alice.access_token,
        bob.access_token,
        api.PASSWORD,
        conv,
        envelope["ciphertext"],
        alice.device_id,
        "txn-1",
    ]
    for secret in secrets:
        assert secret not in output, f"{secret!r} appears in the server's output"
    assert not re.search(r"Bearer \S", output)
