"""A tiny HTTP/1.1 keep-alive client for the load generator.

Why not httpx: on this 2-core machine ``httpx.AsyncClient`` tops out near 900 requests a
second against a server that answers instantly, and gets slower as concurrency rises
(360 req/s at 64) -- far below the 3,000 msg/s the server is asked to reach, so the
generator, not the server, would be measured. This client does the least a benchmark
needs: one connection per worker, one request in flight per connection, requests written
as a single pre-formatted buffer, responses parsed by ``httptools`` (the C parser uvicorn
uses, already installed with ``uvicorn[standard]``). It speaks only to ``http://`` URLs
and is not a general-purpose client: no redirects, no TLS, no proxies, no cookies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

__all__ = ["Connection", "HTTPError", "Response", "connect"]


class HTTPError(Exception):
    """The connection failed, closed early, or answered something unparseable."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    at: float
    """``time.perf_counter()`` when the last byte arrived (before any task switch)."""


class _Protocol(asyncio.Protocol):
    """Feeds bytes to httptools; resolves one pending future per complete response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HTTPError(f"connection closed: {exc}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.chunks = []

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(
                Response(self.parser.get_status_code(), b"".join(self.chunks), perf_counter())
            )

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Connection:
    """One keep-alive connection; ``request`` must not be called concurrently on it."""

    def __init__(self, host: str, port: int, protocol: _Protocol) -> None:
        self._host_header = f"{host}:{port}".encode()
        self._p = protocol

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: bytes = b"",
        timeout: float = 30.0,
    ) -> Response:
        """Send one request and wait for its response. ``headers`` is pre-formatted
        ``Name: value\\r\\n`` lines (so hot loops can build them once)."""
        p = self._p
        if p.closed or p.transport is None:
            raise HTTPError("connection is closed")
        if p.waiter is not None:
            raise RuntimeError("one request at a time per connection")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        p.waiter = waiter
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n" % (
            method.encode(),
            path.encode(),
            self._host_header,
            headers,
            len(body),
        )
        p.transport.write(head + body if body else head)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            p.waiter = None
            self.close()  # a late response must not be read as the next request's
            raise HTTPError(f"{method} {path.split('?')[0]} timed out after {timeout} s") from None

    async def get_json(
        self, path: str, headers: bytes = b"", timeout: float = 30.0
    ) -> dict[str, Any]:
        r = await self.request("GET", path, headers=headers, timeout=timeout)
        return _ok(r, "GET", path)

    async def send_json(
        self, method: str, path: str, obj: object, headers: bytes = b"", timeout: float = 30.0
    ) -> dict[str, Any]:
        """Send ``obj`` as JSON; the response must be 2xx with a JSON object (or no) body."""
        r = await self.request(
            method,
            path,
            orjson.dumps(obj),
            b"Content-Type: application/json\r\n" + headers,
            timeout,
        )
        return _ok(r, method, path)

    @property
    def closed(self) -> bool:
        return self._p.closed

    def close(self) -> None:
        if self._p.transport is not None and not self._p.closed:
            self._p.closed = True  # at once: connection_lost only runs on a later loop pass
            self._p.transport.close()


def _ok(r: Response, method: str, path: str) -> dict[str, Any]:
    where = f"{method} {path.split('?')[0]}"
    if not 200 <= r.status < 300:
        raise HTTPError(f"{where} -> {r.status}: {r.body[:300]!r}")
    if not r.body:
        return {}
    body = orjson.loads(r.body)
    if not isinstance(body, dict):
        raise HTTPError(f"{where} answered {r.body[:100]!r}, not a JSON object")
    return body


async def connect(url: str, timeout: float = 10.0) -> Connection:
    """Open a connection to ``http://host:port``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"need an http://host:port URL, got {url!r}")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, protocol = await loop.create_connection(_Protocol, parts.hostname, parts.port)
    return Connection(parts.hostname, parts.port, protocol)
