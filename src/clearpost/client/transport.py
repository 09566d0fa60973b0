"""HTTP transport: one call per API endpoint, safe retries, problem bodies -> ``ClientError``.

The transport takes any ``httpx.AsyncClient``: one with a base URL pointing at a server,
or one over ``httpx.ASGITransport`` running the app in-process. It never sees plaintext;
everything it sends was encrypted by ``crypto``.

Retries: a request that the server cannot have processed (connection refused, 429, 503)
is retried with backoff. A request that is idempotent by design (GET, DELETE, the PUTs
keyed by a client transaction id, one-time key uploads) is also retried after a network
error or a 502/504, because sending it twice has the same effect as once.

A 503 means the server cannot reach its database for now (``database_unavailable``, with
``Retry-After``). An idempotent request rides that out: it keeps being retried after the
usual attempts, for up to ``outage_patience`` seconds of waiting in all (60 by default),
with the same transaction id, so a send during a database restart lands exactly once. A
request that is not idempotent gets only the usual attempts: one that was in flight when
the database went away may have been applied.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from clearpost.client.errors import ClientError

Sleep = Callable[[float], Awaitable[None]]

_RETRY_STATUS_ALWAYS = {429, 503}
_RETRY_STATUS_IDEMPOTENT = {502, 504}


@dataclass(frozen=True, slots=True)
class LoginResult:
    user_id: str
    device_id: str
    access_token: str


def path_segment(value: str) -> str:
    """``value`` as one URL path segment (every reserved character escaped)."""
    return quote(value, safe="")


class Transport:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: str | None = None,
        attempts: int = 5,
        backoff: float = 0.1,
        sleep: Sleep = asyncio.sleep,
        outage_patience: float = 60.0,
    ) -> None:
        self.http = http
        self.token = token
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.outage_patience = outage_patience
        self._sleep = sleep
        self.seconds = 0.0
        """Wall time spent waiting for HTTP responses (for the benchmark)."""
        self.calls = 0

    # -- plumbing -------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            raise ClientError("this client is not logged in", code="not_logged_in")
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return its JSON body (None for 204). Raise ``ClientError``."""
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE")
        headers = self.auth_headers() if auth else {}
        content = orjson.dumps(body) if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        delay = self.backoff
        started = time.perf_counter()
        try:
            return await self._attempts(
                method, path, content, params, headers, extra, idempotent, delay
            )
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    async def _attempts(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        extra: dict[str, Any],
        idempotent: bool,
        delay: float,
    ) -> Any:
        waited = 0.0  # seconds slept between attempts of this request
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.attempts
            try:
                response = await self.http.request(
                    method, path, content=content, params=params, headers=headers, **extra
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if last or not (idempotent or never_sent):
                    raise ClientError(
                        f"cannot reach the server ({type(exc).__name__})", code="network_error"
                    ) from exc
                await self._sleep(delay * (1 + random.random()))
                delay *= 2
                continue
            status = response.status_code
            retry = status in _RETRY_STATUS_ALWAYS or (
                idempotent and status in _RETRY_STATUS_IDEMPOTENT
            )
            wait = _retry_after(response, delay)
            outlast = idempotent and status == 503 and waited + wait <= self.outage_patience
            if retry and (not last or outlast):
                await self._sleep(wait)
                waited += wait
                delay = min(delay * 2, 30.0)
                continue
            return _decode(response)

    # -- accounts -------------------------------------------------------------------------

    async def register(self, username: str, password: str, invite: str | None = None) -> str:
        body = {"username": username, "password": password}
        if invite is not None:
            body["invite"] = invite
        out = await self.request(
            "POST",
            "/v1/accounts",
            body=body,
            auth=False,
            idempotent=False,
        )
        return str(out["user_id"])

    async def login(self, username: str, password: str, device_name: str | None) -> LoginResult:
        out = await self.request(
            "POST",
            "/v1/login",
            auth=False,
            idempotent=False,
            body={"username": username, "password": password, "device_name": device_name},
        )
        return LoginResult(str(out["user_id"]), str(out["device_id"]), str(out["access_token"]))

    async def logout(self) -> None:
        await self.request("POST", "/v1/logout", idempotent=False)

    async def my_devices(self) -> list[dict[str, Any]]:
        out = await self.request("GET", "/v1/devices")
        return list(out["devices"])

    async def delete_device(self, device_id: str) -> None:
        await self.request("DELETE", f"/v1/devices/{path_segment(device_id)}")

    async def change_password(self, old: str, new: str) -> None:
        await self.request(
            "PUT",
            "/v1/account/password",
            body={"old_password": old, "new_password": new},
            idempotent=False,
        )

    async def delete_account(self, password: str) -> None:
        await self.request(
            "POST", "/v1/account/delete", body={"password": password}, idempotent=False
        )

    # -- keys -----------------------------------------------------------------------------

    async def upload_keys(self, body: dict[str, Any]) -> int:
        """``POST /v1/keys/upload`` (Matrix's body: ``device_keys``, ``one_time_keys``,
        ``fallback_keys``); returns the unclaimed ``signed_curve25519`` count. Uploading
        the same keys again is a no-op on the server, so retrying is safe."""
        out = await self.request("POST", "/v1/keys/upload", body=body, idempotent=True)
        return int(out["one_time_key_counts"].get("signed_curve25519", 0))

    async def query_keys(self, users: list[str]) -> dict[str, dict[str, Any]]:
        """``POST /v1/keys/query`` for every device of ``users``: user -> device -> keys."""
        out = await self.request(
            "POST",
            "/v1/keys/query",
            body={"device_keys": {u: [] for u in users}},
            idempotent=True,
        )
        return dict(out["device_keys"])

    async def claim_keys(
        self, devices: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """``POST /v1/keys/claim``: ``{user: {device: "signed_curve25519"}}`` -> ``{user:
        {device: {"signed_curve25519:<id>": signed key}}}``."""
        out = await self.request(
            "POST", "/v1/keys/claim", body={"one_time_keys": devices}, idempotent=False
        )
        return dict(out["one_time_keys"])

    async def user_devices(self, user_id: str) -> list[dict[str, Any]]:
        out = await self.request("GET", f"/v1/users/{path_segment(user_id)}/devices")
        return list(out["devices"])

    async def send_to_device(
        self, event_type: str, txn_id: str, messages: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        out = await self.request(
            "PUT",
            f"/v1/to-device/{path_segment(event_type)}/{path_segment(txn_id)}",
            body={"messages": messages},
        )
        return dict(out)

    # -- conversations --------------------------------------------------------------------

    async def create_conversation(self, kind: str, members: list[str]) -> dict[str, Any]:
        # A direct conversation is found-or-created, so a retry is harmless; a group is not.
        out = await self.request(
            "POST",
            "/v1/conversations",
            body={"kind": kind, "members": members},
            idempotent=kind == "direct",
        )
        return dict(out)

    async def conversations(self, max_pages: int = 100) -> list[dict[str, Any]]:
        """Every page of your conversations (at most ``max_pages`` of 500)."""
        out = await self.request("GET", "/v1/conversations")
        found = list(out["conversations"])
        for _ in range(max_pages - 1):
            if not out.get("next"):
                break
            out = await self.request("GET", "/v1/conversations", params={"after": out["next"]})
            found += out["conversations"]
        return found

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/v1/conversations/{path_segment(conversation_id)}"))

    async def add_member(self, conversation_id: str, user_id: str) -> dict[str, Any]:
        out = await self.request(
            "POST",
            f"/v1/conversations/{path_segment(conversation_id)}/members/{path_segment(user_id)}",
            idempotent=False,
        )
        return dict(out)

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        await self.request(
            "DELETE",
            f"/v1/conversations/{path_segment(conversation_id)}/members/{path_segment(user_id)}",
        )

    async def leave(self, conversation_id: str) -> None:
        await self.request(
            "POST", f"/v1/conversations/{path_segment(conversation_id)}/leave", idempotent=False
        )

    async def send_message(
        self, conversation_id: str, txn_id: str, envelope: dict[str, Any]
    ) -> dict[str, Any]:
        out = await self.request(
            "PUT",
            f"/v1/conversations/{path_segment(conversation_id)}/messages/{path_segment(txn_id)}",
            body=envelope,
        )
        return dict(out)

    async def messages(
        self, conversation_id: str, after: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        out = await self.request(
            "GET",
            f"/v1/conversations/{path_segment(conversation_id)}/messages",
            params={"after": after, "limit": limit},
        )
        return dict(out)

    # -- partners: share intents, connected apps, the log about me ------------------------

    async def share_intents(self) -> list[dict[str, Any]]:
        out = await self.request("GET", "/v1/me/share-intents")
        return list(out["share_intents"])

    async def complete_share_intent(self, intent_id: str, recipients: int) -> None:
        # Not retried after a network error: a repeat would fail with intent_completed.
        await self.request(
            "POST",
            f"/v1/me/share-intents/{path_segment(intent_id)}/complete",
            body={"recipients": recipients},
            idempotent=False,
        )

    async def apps(self) -> list[dict[str, Any]]:
        out = await self.request("GET", "/v1/me/apps")
        return list(out["apps"])

    async def revoke_app(self, partner_id: str) -> list[int]:
        out = await self.request("DELETE", f"/v1/me/apps/{path_segment(partner_id)}")
        return [int(i) for i in out.get("log_indexes", [])]

    async def agreements(self) -> list[dict[str, Any]]:
        out = await self.request("GET", "/v1/agreements", auth=False)
        return list(out["partners"])

    async def my_log_entries(self, max_pages: int = 1000) -> dict[str, Any]:
        """Every page of ``GET /v1/me/log-entries`` as one answer: the later pages are proven
        against the first page's checkpoint; ``entries`` holds them all, ``total`` is what
        the last page counted (more than ``len(entries)`` when ``max_pages`` cut it short)."""
        first = dict(await self.request("GET", "/v1/me/log-entries"))
        entries = list(first.get("entries") or [])
        answer, pages = first, 1
        while answer.get("next_start") is not None and pages < max_pages:
            params: dict[str, Any] = {"start": answer["next_start"]}
            if first.get("size") is not None:
                params["size"] = first["size"]
            answer = dict(await self.request("GET", "/v1/me/log-entries", params=params))
            entries.extend(answer.get("entries") or [])
            pages += 1
        return {**first, "entries": entries, "total": answer.get("total", len(entries))}

    # -- sync -----------------------------------------------------------------------------

    async def sync(self, since: str | None, timeout_ms: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": timeout_ms}
        if since is not None:
            params["since"] = since
        out = await self.request("GET", "/v1/sync", params=params, timeout=timeout_ms / 1000 + 30)
        return dict(out)

    def stream_url(self, since: str | None) -> str:
        """The WebSocket URL of ``/v1/stream`` on the same server as the HTTP client."""
        base = self.http.base_url
        scheme = "wss" if base.scheme == "https" else "ws"
        url = base.copy_with(scheme=scheme, raw_path=base.raw_path.rstrip(b"/") + b"/v1/stream")
        return str(url.copy_merge_params({"since": since}) if since else url)


def _retry_after(response: httpx.Response, default: float) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return min(30.0, max(0.0, float(header)))
    except ValueError:
        return default


def _decode(response: httpx.Response) -> Any:
    status = response.status_code
    if (status == 204 or not response.content) and status < 400:
        return None
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if status < 400:
        if body is None:
            raise ClientError(
                f"the server sent a response that is not JSON (HTTP {status})",
                code="bad_response",
                status=status,
            )
        return body
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = str(body.get("detail") or body.get("title") or "request refused")
        extra = {
            k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "code")
        }
        raise ClientError(detail, code=body["code"], status=status, **extra)
    raise ClientError(f"the server answered HTTP {status}", code=f"http_{status}", status=status)
