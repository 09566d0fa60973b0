"""The tile auditor's HTTP client (``audit/rawget.py``) against servers that end
connections: what it sent and did not get answered is sent again on a new connection."""

from __future__ import annotations

import asyncio

import pytest

from clearpost.audit.errors import LogUnavailable
from clearpost.audit.rawget import RawGetter


async def _serve(answers_per_connection: int) -> tuple[asyncio.Server, list[bytes]]:
    """An HTTP/1.1 server that answers each GET with its path, and closes each connection
    after ``answers_per_connection`` answers (0: closes at once, answering nothing)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for k in range(answers_per_connection):
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if not line:
                break
            path = line.split()[1]
            seen.append(path)
            last = k == answers_per_connection - 1
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(path)
            writer.write(head + (b"Connection: close\r\n" if last else b"") + b"\r\n" + path)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), seen


async def test_pipelined_requests_get_through_a_server_that_closes_after_each_answer() -> None:
    server, seen = await _serve(1)
    port = server.sockets[0].getsockname()[1]
    getter = RawGetter(f"http://127.0.0.1:{port}", 2, timeout=10)
    try:
        paths = ["/a", "/b", "/c", "/d"]
        assert await getter.get_many(paths) == [(200, p.encode()) for p in paths]
        assert await getter.get("/e") == (200, b"/e")
        assert getter.connections_opened == 5  # none reused after "Connection: close"
        assert seen == [b"/a", b"/b", b"/c", b"/d", b"/e"]
    finally:
        getter.close()
        server.close()


async def test_a_kept_connection_answers_several_pipelined_requests_in_order() -> None:
    server, _ = await _serve(100)
    port = server.sockets[0].getsockname()[1]
    getter = RawGetter(f"http://127.0.0.1:{port}", 1, timeout=10)
    try:
        assert await getter.get_many(["/x", "/y", "/z"]) == [
            (200, b"/x"),
            (200, b"/y"),
            (200, b"/z"),
        ]
        assert await getter.get("/w") == (200, b"/w")
        assert getter.connections_opened == 1
    finally:
        getter.close()
        server.close()


async def test_a_server_that_answers_nothing_fails_after_a_second_try() -> None:
    server, _ = await _serve(0)
    port = server.sockets[0].getsockname()[1]
    getter = RawGetter(f"http://127.0.0.1:{port}", 1, timeout=10)
    try:
        with pytest.raises(LogUnavailable):
            await getter.get_many(["/a", "/b"])
        assert getter.connections_opened == 2
    finally:
        getter.close()
        server.close()
