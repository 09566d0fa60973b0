"""Fetching from a Clearpost log over HTTP.

``LogClient`` speaks the public log API (``/v1/log/...``) and nothing else. It trusts
nothing it receives: it only checks that answers have the documented shape (JSON fields,
canonical base64, 32-byte hashes) and leaves every cryptographic judgement to the
caller. Transport errors and 5xx answers are retried a few times, then raised as
``LogUnavailable``; a 4xx problem is raised as ``ServerRefused`` with its machine code.

It runs over an injectable ``httpx.AsyncClient`` whose ``base_url`` is the server
(``http://host:port``), so the same code runs against a real server and, in tests, against
the app in-process; or, given the server's URL instead, over ``RawGetter``'s keep-alive
connections for every GET. That is what ``clearpost audit`` does: it makes no request
httpx is needed for, and importing httpx, building a client and its first request
(which loads anyio) cost 0.2 s of CPU before the first tile could be asked for (measured,
out of a two-second audit). A POST from a client built on a URL goes through httpx.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from clearpost.audit.errors import LogUnavailable, ServerRefused
from clearpost.audit.rawget import RawGetter
from clearpost.core.tlog.note import MAX_NOTE_BYTES

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_PAGE", "TILES_PREFIX", "LogClient", "LogKeyInfo"]

TILES_PREFIX = "/log"
"""Where the log serves C2SP tlog-tiles (``/log/checkpoint``, ``/log/tile/...``)."""

MAX_PAGE = 1000
"""Most entries the log serves per request."""

_RETRIES = 3
TILE_CONNECTIONS = 32
"""Keep-alive connections the tile audit uses, each with two bundles and their stored tiles
in flight (pipelined): the server reads the tile requests that arrive together in one
transaction, so more of them in flight means fewer, larger reads (with 8 connections a
read took 3 requests, with 32 about 5 to 8)."""
_RETRY_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class LogKeyInfo:
    """What ``GET /v1/log/key`` claims. Unauthenticated: pin it, do not re-trust it."""

    origin: str
    vkey: str
    witnesses: tuple[str, ...]


class LogClient:
    """The public transparency-log API of one server."""

    def __init__(self, http: httpx.AsyncClient | str, *, raw_tiles: bool = False) -> None:
        """``http``: an httpx client with the server as its ``base_url``, or the server's
        URL (``http(s)://host:port``), which makes every GET a ``RawGetter`` one."""
        if isinstance(http, str):
            self.http: httpx.AsyncClient | None = None
            self._url = http.rstrip("/")
            raw_tiles = True
        else:
            self.http = http
            self._url = str(http.base_url).rstrip("/")
        self.raw_tiles = raw_tiles
        """Fetch tiles with ``RawGetter`` (a real server at ``base_url``) instead of httpx."""
        self._raw: RawGetter | None = None

    @property
    def url(self) -> str:
        return self._url

    async def key(self) -> LogKeyInfo:
        body = _object(await self._get_json("/v1/log/key"), "/v1/log/key")
        origin, vkey, witnesses = body.get("origin"), body.get("vkey"), body.get("witnesses", [])
        if not isinstance(origin, str) or not isinstance(vkey, str):
            raise LogUnavailable("GET /v1/log/key did not return an origin and a vkey")
        if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
            raise LogUnavailable("GET /v1/log/key returned a malformed witness list")
        return LogKeyInfo(origin, vkey, tuple(witnesses))

    async def checkpoint(self, cosigned: int = 0) -> str:
        """The latest signed checkpoint note (with ``cosigned``: the latest with that many
        cosignatures), exactly as served."""
        params = {"cosigned": cosigned} if cosigned else None
        content = await self._get("/v1/log/checkpoint", params)
        if len(content) > MAX_NOTE_BYTES:
            raise LogUnavailable("the checkpoint note is larger than any valid note")
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogUnavailable("the checkpoint note is not UTF-8") from exc

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Entry bodies ``[start, end)`` (at most ``MAX_PAGE``). A log that lost entries may
        return fewer than asked for; judging that is the caller's job."""
        what = f"entries [{start}, {end})"
        body = _object(await self._get_json("/v1/log/entries", {"start": start, "end": end}), what)
        items = body.get("entries")
        if body.get("start") != start or not isinstance(items, list):
            raise LogUnavailable(f"the answer for {what} is not an entries page")
        if len(items) > end - start:
            raise LogUnavailable(f"the log returned {len(items)} entries for {what}")
        return [_b64(item, what) for item in items]

    async def iter_entries(
        self, start: int, end: int, *, page: int = MAX_PAGE, parallel: int = 4
    ) -> AsyncIterator[tuple[int, list[bytes]]]:
        """Yield ``(first index, bodies)`` pages covering ``[start, end)`` in order, with up
        to ``parallel`` requests in flight."""
        bounds = [(lo, min(lo + page, end)) for lo in range(start, end, page)]
        pending: list[asyncio.Task[list[bytes]]] = []
        try:
            for i in range(len(bounds)):
                while len(pending) < parallel and i + len(pending) < len(bounds):
                    lo, hi = bounds[i + len(pending)]
                    pending.append(asyncio.create_task(self.entries(lo, hi)))
                bodies = await pending.pop(0)
                yield bounds[i][0], bodies
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        what = f"inclusion proof of entry {index} in size {size}"
        body = await self._get_json("/v1/log/proof/inclusion", {"index": index, "size": size})
        return _hashes(body, what)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        what = f"consistency proof from size {first} to {second}"
        body = await self._get_json("/v1/log/proof/consistency", {"from": first, "to": second})
        return _hashes(body, what)

    async def tile(self, path: str) -> bytes:
        """A C2SP tlog-tiles resource (``tile/0/000``, ``tile/entries/001.p/5``) or a stored
        tile (``nodes/0/000``, a Clearpost extension), as raw bytes, from under the log's
        tiles prefix ``/log``."""
        if not self.raw_tiles:
            return await self._get(f"{TILES_PREFIX}/{path}")
        got = (await self.tiles([path]))[0]
        if isinstance(got, ServerRefused):
            raise got
        return got

    async def tiles(self, paths: Sequence[str]) -> list[bytes | ServerRefused]:
        """Several tiles at once (with ``raw_tiles``: pipelined on one connection), each
        as its bytes or, when the log refused it (4xx), the ``ServerRefused`` it raised
        alone; a 5xx or a transport failure is retried, then raised as ``LogUnavailable``."""
        if not self.raw_tiles:
            return list(await asyncio.gather(*(self._refused_or_tile(p) for p in paths)))
        full = [f"{TILES_PREFIX}/{p}" for p in paths]
        out: list[bytes | ServerRefused] = []
        for path, (status, body) in zip(full, await self._getter().get_many(full), strict=True):
            if status < 400:
                out.append(body)
            elif status < 500:
                out.append(_refused("GET", path, status, body))
            else:
                out.append(await self._raw_retried(path))
        return out

    async def _refused_or_tile(self, path: str) -> bytes | ServerRefused:
        try:
            return await self.tile(path)
        except ServerRefused as exc:
            return exc

    async def _raw_retried(self, full: str) -> bytes | ServerRefused:
        """``full`` again, alone, after a 5xx answer (a few times, then ``LogUnavailable``)."""
        for attempt in range(1, _RETRIES):
            await asyncio.sleep(_RETRY_DELAY * attempt)
            status, body = await self._getter().get(full)
            if status < 400:
                return body
            if status < 500:
                return _refused("GET", full, status, body)
        raise LogUnavailable(f"GET {self.url}{full} answered {status}")

    def _getter(self) -> RawGetter:
        if self._raw is None:
            self._raw = RawGetter(self.url, TILE_CONNECTIONS)
        return self._raw

    def close(self) -> None:
        """Close the tile connections (the httpx client is the caller's to close)."""
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    async def add_cosignature(self, size: int, line: str) -> bool:
        """Submit a cosignature line; False when the log already has this witness's
        cosignature for that size."""
        try:
            body = {"size": size, "cosignature": line}
            await self._send("POST", "/v1/log/cosignatures", None, body)
        except ServerRefused as exc:
            if exc.problem == "already_cosigned":
                return False
            raise
        return True

    # --- plumbing ---

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        content = await self._get(path, params)
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise LogUnavailable(f"GET {path} did not return JSON") from exc

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        return await self._send("GET", path, params, None)

    async def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any
    ) -> bytes:
        """The body of a 2xx/3xx answer; a 4xx is ``ServerRefused``; transport failures
        and 5xx answers are tried again, then ``LogUnavailable``."""
        for attempt in range(_RETRIES):
            last = attempt == _RETRIES - 1
            try:
                status, content = await self._request(method, path, params, json)
            except LogUnavailable as exc:
                if last:
                    raise LogUnavailable(f"{method} {self.url}{path} failed: {exc}") from exc
            else:
                if status < 400:
                    return content
                if status < 500:
                    raise _refused(method, path, status, content)
                if last:
                    raise LogUnavailable(f"{method} {self.url}{path} answered {status}")
            await asyncio.sleep(_RETRY_DELAY * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any
    ) -> tuple[int, bytes]:
        """One try: status and body; a transport failure is ``LogUnavailable``."""
        if self.http is None and method == "GET":
            query = "?" + urlencode(params) if params else ""
            return await self._getter().get(path + query)
        import httpx  # loaded already when the caller gave a client

        try:
            if self.http is not None:
                response = await self.http.request(method, path, params=params, json=json)
            else:  # a POST from a client built on a URL: rare (a witness cosigning)
                async with httpx.AsyncClient(base_url=self.url, timeout=30.0) as http:
                    response = await http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise LogUnavailable(str(exc) or type(exc).__name__) from exc
        return response.status_code, response.content


def _refused(method: str, path: str, status: int, content: bytes) -> ServerRefused:
    problem, detail = "unknown", content[:200].decode("utf-8", "replace")
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        problem = str(body.get("code", problem))
        detail = str(body.get("detail", detail))
    return ServerRefused(
        f"{method} {path} was refused ({status} {problem}): {detail}",
        status=status,
        problem=problem,
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LogUnavailable(f"the answer for {what} is not a JSON object")
    return value


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise LogUnavailable(f"the answer for {what} has a value that is not base64")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise LogUnavailable(f"the answer for {what} has malformed base64") from exc


def _hashes(value: Any, what: str) -> list[bytes]:
    hashes = _object(value, what).get("hashes")
    if not isinstance(hashes, list) or len(hashes) > 65:
        raise LogUnavailable(f"the answer for {what} is not a list of hashes")
    return [_b64(h, what) for h in hashes]
