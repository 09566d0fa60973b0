"""Hardening of ``clearpost serve``, against real server processes (issue 14, items 4-8).

Startup failures are one ``error:`` line and a non-zero exit; request heads are bounded in
size and count (431), heads and bodies in time (408, then the connection is closed); a
forwarded client address is believed only from a configured proxy.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import api
from tests.support.server import FAST_ENV, ServerProcess, free_port, start_server

TIMEOUTS = {"CLEARPOST_HEADER_TIMEOUT_SECONDS": "1", "CLEARPOST_BODY_TIMEOUT_SECONDS": "1"}


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'clearpost.db'}"


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``clearpost serve`` that is expected to fail; it must end on its own, quickly."""
    return subprocess.run(
        [sys.executable, "-m", "clearpost", "serve", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,  # the old server could hang here forever, deaf to SIGTERM
        env={**os.environ, **FAST_ENV, **(env or {})},
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in errors if not line.startswith("Clearpost on ")]
    assert len(errors) == 1, output
    assert errors[0].startswith("error: "), output
    return errors[0]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with one-second head and body deadlines."""
    proc = start_server(tmp_path / "srv", _sqlite(tmp_path), TIMEOUTS)
    try:
        yield proc
    finally:
        proc.stop()


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes; b"" if it reset the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        got = b""
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            return got
        return got


def _trickle(sock: socket.socket, data: bytes, every: float, give_up: float) -> tuple[bytes, float]:
    """Send one byte every ``every`` seconds; what the server answered and when, or b""
    if it closed without an answer."""
    start = time.monotonic()
    sock.settimeout(every)
    for byte in data:
        if time.monotonic() - start > give_up:
            break
        try:
            sock.send(bytes([byte]))
            got = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b"", time.monotonic() - start
        return got, time.monotonic() - start
    return b"", time.monotonic() - start


# -- 4 and 5: startup failures -----------------------------------------------------------


def test_port_in_use_exits_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port))
    assert done.returncode == 1
    line = _one_error_line(done)
    assert f"127.0.0.1:{port}" in line and "already in use" in line
    assert not (tmp_path / "d" / "clearpost.db").exists()  # nothing was started


@pytest.mark.parametrize(
    ("database", "exit_code", "named"),
    [
        # a closed port: PostgreSQL down (never the shared server)
        ("postgresql+asyncpg://postgres@127.0.0.1:{closed}/clearpost", 1, "127.0.0.1:{closed}"),
        ("postgresql+asyncpg://postgres@no-such-host.invalid/clearpost", 1, "unknown host"),
        ("not a url", 2, "setting 'database'"),
        ("postgresql://postgres@127.0.0.1/clearpost", 2, "setting 'database'"),
    ],
)
def test_unusable_database_is_one_line(
    tmp_path: Path, database: str, exit_code: int, named: str
) -> None:
    closed = free_port()
    done = _serve(
        tmp_path, "--port", str(free_port()), "--database", database.format(closed=closed)
    )
    assert done.returncode == exit_code
    assert named.format(closed=closed) in _one_error_line(done)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('port = "8448"', "'port' must be a whole number"),
        ("log_level = 5", "'log_level' must be a string"),
        ('log_level = "loud"', "'log_level' must be one of"),
        ("max_body_bytes = 1.5", "'max_body_bytes' must be a whole number"),
        ("header_timeout_seconds = 0", "'header_timeout_seconds' must be above 0"),
        ('trusted_proxies = "proxy.example"', "'trusted_proxies'"),
        ("[server]\nmax_connections = true", "'max_connections' must be a whole number"),
    ],
)
def test_wrong_setting_in_the_toml_file_is_one_line(tmp_path: Path, toml: str, named: str) -> None:
    config = tmp_path / "clearpost.toml"
    config.write_text(toml + "\n")
    done = _serve(tmp_path, "--config", str(config))
    assert done.returncode == 2
    assert named in _one_error_line(done)


def test_wrong_setting_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    done = _serve(tmp_path, env={"CLEARPOST_MAX_CONNECTIONS": "lots"})
    assert done.returncode == 2
    assert "$CLEARPOST_MAX_CONNECTIONS" in _one_error_line(done)


# -- 6: request heads are bounded in size and count --------------------------------------


def test_oversized_header_gets_431_and_the_server_keeps_serving(guarded: ServerProcess) -> None:
    port = _port(guarded)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    answer = _exchange(port, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"header_too_large"' in answer
    # 8 MiB: refused after the first 16 KiB; the server drops the rest for a moment (a
    # lingering close) so that the client, still sending, can read the 431
    answer = _exchange(port, head.replace(b"a" * 20_000, b"a" * (8 << 20)))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert httpx.get(guarded.url + "/health", timeout=10).status_code == 200


def test_too_many_header_fields_get_431(guarded: ServerProcess) -> None:
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(101))
    answer = _exchange(_port(guarded), b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(90))
    answer = _exchange(
        _port(guarded),
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


# -- 7: slow heads and bodies are cut off ------------------------------------------------


def test_slow_loris_head_is_closed(guarded: ServerProcess) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 50 + b"\r\n"
    with socket.create_connection(("127.0.0.1", _port(guarded)), timeout=15) as sock:
        answer, took = _trickle(sock, head, every=0.2, give_up=15)
    assert took < 15, "the server held a connection sending a byte every 0.2 s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_silent_connection_is_closed(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", _port(guarded)), timeout=15) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_slow_body_is_closed(guarded: ServerProcess) -> None:
    head = (
        b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", _port(guarded)), timeout=15) as sock:
        sock.sendall(head)
        answer, took = _trickle(sock, b"{" + b" " * 150, every=0.2, give_up=15)
    assert took < 15, "the server held a body arriving a byte every 0.2 s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_fast_requests_and_keep_alive_still_work(guarded: ServerProcess) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
        body = {"username": "nobody", "password": "not-the-password"}
        assert client.post("/v1/login", json=body).status_code in (401, 403)


def test_idle_keep_alive_is_closed_and_connections_are_capped(tmp_path: Path) -> None:
    env = {"CLEARPOST_KEEPALIVE_TIMEOUT_SECONDS": "1", "CLEARPOST_MAX_CONNECTIONS": "3"}
    server = start_server(tmp_path / "srv", _sqlite(tmp_path), env)
    port = _port(server)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while chunk := sock.recv(65536):  # the answer, then the close when idle
                got += chunk
        assert got.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in got
        held = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(3)]
        try:
            answer = _exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        finally:
            for sock in held:
                sock.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    finally:
        server.stop()


# -- 8: X-Forwarded-For is believed only from a configured proxy --------------------------

LIMITED = {"CLEARPOST_LOGIN_RATE_PER_MINUTE": "1", "CLEARPOST_LOGIN_BURST": "3"}


def _logins_from_many_forwarded_addresses(url: str) -> list[int]:
    body = {"username": "nobody", "password": "not-the-password"}
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post(
                "/v1/login", json=body, headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(1, 7)
        ]


def test_forwarded_for_from_loopback_does_not_escape_the_login_limit(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv", _sqlite(tmp_path), LIMITED)
    try:
        statuses = _logins_from_many_forwarded_addresses(server.url)
    finally:
        server.stop()
    assert statuses[3:] == [429, 429, 429], statuses


def test_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "srv", _sqlite(tmp_path), {**LIMITED, "CLEARPOST_TRUSTED_PROXIES": "127.0.0.1"}
    )
    try:
        statuses = _logins_from_many_forwarded_addresses(server.url)
    finally:
        server.stop()
    assert 429 not in statuses, statuses  # each address has its own budget


async def test_a_shutdown_answers_long_polls_and_ends_streams_at_once(tmp_path: Path) -> None:
    """SIGTERM: a waiting long poll gets its (empty) answer at once instead of a 500 when the
    grace period ends, an open stream is closed with 1012 (service restart), and the server
    is gone within a second or so, not after the 5 s grace period."""
    server = start_server(tmp_path / "srv", _sqlite(tmp_path))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=40) as http:
            alice = await api.user(http, "alice")
            cursor = (await http.get("/v1/sync", headers=alice.headers)).json()["cursor"]
            poll = asyncio.create_task(
                http.get(f"/v1/sync?since={cursor}&timeout=25000", headers=alice.headers)
            )
            url = server.url.replace("http://", "ws://") + f"/v1/stream?since={cursor}"
            stream = await connect(url, additional_headers=alice.headers)
            await asyncio.sleep(0.5)  # both are waiting for events
            assert not poll.done()
            started = time.monotonic()
            server.process.terminate()
            answer = await asyncio.wait_for(poll, 10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["cursor"] == cursor and answer.json()["messages"] == []
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(stream.recv(), 10)
            assert stream.close_code == 1012, (stream.close_code, stream.close_reason)
            assert await asyncio.to_thread(server.process.wait, 10) == 0
            assert time.monotonic() - started < 3, server.log()
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
