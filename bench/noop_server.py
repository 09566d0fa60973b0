"""A server that answers every HTTP/1.1 request at once with a fixed 200: the generator's peer.

Run as ``python bench/noop_server.py PORT``. It does no work per request beyond finding
where the request ends, so the rate the generator reaches against it is the generator's
own ceiling on this machine (both share the same cores, as in a real run).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

_BODY = b'{"conversation_id":"c_noop","seq":1,"sent_at":0}'
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)


class _Noop(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if self.transport is not None:
                self.transport.write(_RESPONSE)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Noop, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1])))
