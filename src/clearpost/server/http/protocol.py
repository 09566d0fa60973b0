"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with bounds it lacks.

uvicorn bounds idle keep-alive time (``timeout_keep_alive``) and concurrent connections
(``limit_concurrency``), and the h11 protocol bounds a request head
(``h11_max_incomplete_event_size``). The server runs the httptools protocol (several times
faster than h11), and there nothing bounds a request head: llhttp leaves limits to its
embedder and httptools keeps an unfinished header value in memory, so one connection could
hold megabytes and a client sending a byte every few seconds was held forever. This
subclass adds, per connection:

1. a cap on the bytes of a request head (request line and headers) and on the number of
   header fields: over either, ``431`` and the connection is closed;
2. a deadline for a request head, from the connection opening or the request's first byte
   to the end of its headers: past it, ``408`` and the connection is closed;
3. a deadline for a request body, from the end of the headers to the end of the body: past
   it, ``408`` if no response has started, and the connection is closed.

Written here because neither uvicorn nor httptools offers these for httptools; everything
else (parsing, the ASGI cycle, keep-alive, pipelining) is uvicorn's, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from clearpost.server.config import Settings

LINGER_SECONDS = 2.0
"""How long a refused connection's further input is read and dropped before it is closed."""


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing a request that is refused."""

    def __init__(self, status: int, reason: bytes, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.code, self.detail = status, reason, code, detail


def problem_bytes(status: int, reason: bytes, code: str, detail: str) -> bytes:
    """A whole RFC 9457 response that closes the connection, written straight to the socket
    (no ASGI cycle exists for a request whose head never completed)."""
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": reason.decode(),
            "status": status,
            "code": code,
            "detail": detail,
        }
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


def protocol_for(settings: Settings) -> type[asyncio.Protocol]:
    """The protocol class uvicorn instantiates per connection, bound to these settings."""

    class Bounded(BoundedHttpToolsProtocol):
        max_head_bytes = settings.max_header_bytes
        max_header_count = settings.max_header_count
        head_timeout = settings.header_timeout_seconds
        body_timeout = settings.body_timeout_seconds

    return Bounded


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 16 * 1024
    max_header_count = 100
    head_timeout = 10.0
    body_timeout = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._discarding = False

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # (2) a connection that never sends a head is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's ``data_received``, plus (1): bytes are counted while a head is read, and a
        refusal raised in a callback becomes its own response rather than uvicorn's 400."""
        self._unset_keepalive_if_required()
        if self._discarding:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refuse):
                self._refuse(exc.__context__)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # (1) the head is still unfinished after this chunk: its bytes so far are at most
        # what arrived since it began, which is what is counted
        if self._reading_head and self._head_bytes > self.max_head_bytes:
            self._refuse(self._too_large())

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_header_count:
            raise _Refuse(
                431,
                b"Request Header Fields Too Large",
                "header_too_large",
                f"a request may carry at most {self.max_header_count} header fields",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # (1) a head that arrived whole in one read was never counted unfinished
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            raise self._too_large()
        self._reading_head, self._head_bytes = False, 0
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        self._reading_head, self._head_bytes = True, 0
        super().on_message_complete()

    # -- timers and refusals -------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._answering():
            # the previous request is still being answered and reading is paused; its own
            # bounds apply, the next head's clock starts again
            self._arm_head_timer()
            return
        self._refuse(
            _Refuse(
                408,
                b"Request Timeout",
                "request_timeout",
                f"the request's headers did not arrive within {self.head_timeout:g} s",
            )
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if not cycle.response_started:
            self.transport.write(
                problem_bytes(
                    408,
                    b"Request Timeout",
                    "request_timeout",
                    f"the request's body did not arrive within {self.body_timeout:g} s",
                )
            )
        # the app sees a disconnect and anything it still sends is dropped
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def _too_large(self) -> _Refuse:
        return _Refuse(
            431,
            b"Request Header Fields Too Large",
            "header_too_large",
            f"the request line and headers may be at most {self.max_head_bytes} bytes",
        )

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, refusal: _Refuse) -> None:
        self._cancel_timers()
        if self._answering():  # never write into a response that is under way
            self.transport.close()
            return
        self.transport.write(
            problem_bytes(refusal.status, refusal.reason, refusal.code, refusal.detail)
        )
        # A lingering close, as nginx does: closing a socket with unread data sends a reset,
        # which can destroy the answer before a client that is still sending reads it. So
        # end our side, drop whatever still arrives, and close after ``LINGER_SECONDS``
        # (or when the client closes).
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            self._cancel(timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
