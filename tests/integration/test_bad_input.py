"""Bad input at every endpoint of the client API: refused with its own problem, nothing written.

Every refused request must get a 4xx RFC 9457 problem (``application/problem+json`` with
``type``, ``title``, ``status``, ``detail`` and a stable ``code``), never a 500, and must
leave the database exactly as it was: each case compares a snapshot of every table taken
before and after its request.

The cases share one in-process server and one set of users per module, because a refused
request changes nothing and the next case can reuse the same world. A case that did write
something makes the next case start from a freshly built world, so one bug does not leak
into other cases.

Cases marked ``xfail(strict=True)`` are server bugs: they assert what the API should do.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from _pytest.mark.structures import ParameterSet
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clearpost.core.canonical import matrix_signable
from clearpost.core.e2ee.envelope import validate_megolm_content, validate_olm_content
from clearpost.core.ids import is_user_id
from clearpost.server.http.app import create_app
from clearpost.server.services.sync import encode_cursor
from clearpost.storage.db import Database
from tests.conftest import fast_settings
from tests.support import api
from tests.support.devices import TestDevice
from tests.support.snapshot import Snapshot, changes, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="module")

# --------------------------------------------------------------------------------------------
# The world every case runs against
# --------------------------------------------------------------------------------------------

SYNC_MAX_MS = 200  # a huge sync timeout must be clamped to this, not waited out

PUT, POST, GET, DELETE = "PUT", "POST", "GET", "DELETE"
G = "/v1/conversations/{group}"
MSG = G + "/messages/{txn}"
S = "clearpost.localhost"  # the server name of the test settings
TD = "/v1/to-device/m.room.encrypted/{txn}"
KEYS = OTK = "/v1/keys/upload"
QUERY = "/v1/keys/query"
CLAIM = "/v1/keys/claim"
CONVS = "/v1/conversations"
SYNC = "/v1/sync"
HIST = G + "/messages"
CREDS = {"username": "newbie", "password": api.PASSWORD}


def u(name: str, server: str = S) -> str:
    """A user id on this server (or on ``server``)."""
    return f"@{name}:{server}"


@dataclass
class World:
    """Users, devices and conversations, built once; refused requests must not change them.

    alice (keys, three known one-time keys), bob (keys), carol (keys, 200 unclaimed one-time
    keys: the maximum), dave (no device keys), eve (keys, in no conversation of alice's).
    """

    client: httpx.AsyncClient
    db: Database
    alice: TestDevice
    bob: TestDevice
    carol: TestDevice
    dave: TestDevice
    eve: TestDevice
    alice_otks: dict[str, Any]
    logged_out: TestDevice  # a device of alice's that logged out
    group: str  # by alice, with bob and carol
    direct: str  # alice and bob
    private: str  # bob's group with carol: alice and eve are not members
    left: str  # bob's group that alice left
    used_txn: str  # alice's message in `group` was sent with this txn id
    baseline: Snapshot = field(default_factory=dict)
    clean: bool = False  # the last request was checked to have left `baseline` as it was

    def path(self, template: str) -> str:
        return template.format(
            group=self.group, direct=self.direct, private=self.private, left=self.left,
            nowhere="c_" + "A" * 22, alice=self.alice.user_id, bob=self.bob.user_id,
            carol=self.carol.user_id, eve=self.eve.user_id, alice_dev=self.alice.device_id,
            bob_dev=self.bob.device_id, gone_dev=self.logged_out.device_id,
            used_txn=self.used_txn, txn="bad-" + api.txn(),
        )  # fmt: skip

    def secrets(self) -> list[str]:
        devices = (self.alice, self.bob, self.carol, self.dave, self.eve, self.logged_out)
        return [api.PASSWORD, *(d.access_token for d in devices)]


async def build_world(tmp: Path, stack: AsyncExitStack) -> World:
    app = create_app(fast_settings(tmp, sync_timeout_max_ms=SYNC_MAX_MS))
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # see the 500s
    c = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://t"))

    alice = await api.user(c, "alice", otks=0)
    alice_otks = alice.one_time_keys(3)
    await _ok(c.post(OTK, json={"one_time_keys": alice_otks}, headers=alice.headers))
    bob, eve = await api.user(c, "bob"), await api.user(c, "eve")
    carol = await api.user(c, "carol", otks=0)
    for _ in range(2):  # 2 x 100: the most a device may hold unclaimed
        keys = carol.one_time_keys(100)
        await _ok(c.post(OTK, json={"one_time_keys": keys}, headers=carol.headers))
    dave = await api.user(c, "dave", keys=False)
    logged_out = await api.login(c, "alice", keys=False)
    await _ok(c.post("/v1/logout", headers=logged_out.headers))

    group = await api.conversation(c, alice, "group", bob, carol)
    direct = await api.conversation(c, alice, "direct", bob)
    private = await api.conversation(c, bob, "group", carol)
    left = await api.conversation(c, bob, "group", alice)
    await _ok(c.post(f"/v1/conversations/{left}/leave", headers=alice.headers))
    used_txn = "used-" + api.txn()
    await _ok(api.send(c, alice, group, b"first", txn_id=used_txn))
    # a to-device payload held for alice's device until her next sync acknowledges it
    held = {"messages": {alice.user_id: {alice.device_id: bob.olm_to(alice.curve, alice.curve)}}}
    await _ok(c.put(f"/v1/to-device/m.room.encrypted/{api.txn()}", json=held, headers=bob.headers))

    db: Database = app.state.services.db
    w = World(c, db, alice, bob, carol, dave, eve, alice_otks, logged_out, group, direct,
              private, left, used_txn)  # fmt: skip
    w.baseline = await snapshot(db)
    return w


async def _ok(pending: Any) -> httpx.Response:
    r: httpx.Response = await pending
    assert r.is_success, r.text
    return r


class Lab:
    """Holds the current world and builds a new one when a case left a mark on the old one."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.builds = tmp, 0
        self.stack = AsyncExitStack()
        self._world: World | None = None

    async def world(self) -> World:
        w = self._world
        if w is None or not (w.clean or await snapshot(w.db) == w.baseline):
            await self.stack.aclose()
            self.stack, self.builds = AsyncExitStack(), self.builds + 1
            w = self._world = await build_world(self.tmp / f"world{self.builds}", self.stack)
        w.clean = False  # until the next request is shown to have written nothing
        return w

    async def close(self) -> None:
        await self.stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("bad-input"))
    yield lab
    await lab.close()


@pytest_asyncio.fixture(loop_scope="module")
async def world(lab: Lab) -> World:
    return await lab.world()


# --------------------------------------------------------------------------------------------
# Requests and the checks every refusal must pass
# --------------------------------------------------------------------------------------------

NOBODY: Any = object()
DROP: Any = object()  # in an envelope change: remove the field


@dataclass(frozen=True)
class Raw:
    """Body bytes sent as they are; ``chunked`` streams them without a Content-Length."""

    content: bytes
    content_type: str | None = "application/json"
    chunked: bool = False


Body = Any  # NOBODY, Raw, a JSON value, or a callable World -> one of those


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Body
    status: int
    code: str
    who: str = "alice"


def case(
    id: str,
    method: str,
    path: str,
    body: Body,
    status: int,
    code: str,
    *,
    who: str = "alice",
    bug: str | None = None,
) -> ParameterSet:
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {bug}")] if bug else []
    return pytest.param(Case(method, path, body, status, code, who), id=id, marks=marks)


def credentials(w: World, who: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query params) for one way of presenting, or failing to present, a token."""
    devices = {"alice": w.alice, "bob": w.bob, "carol": w.carol, "dave": w.dave, "eve": w.eve}
    if who in devices:
        return dict(devices[who].headers), {}
    return {
        "anonymous": ({}, {}),
        "basic": ({"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}, {}),
        "bearer-blank": ({"Authorization": "Bearer "}, {}),
        "no-scheme": ({"Authorization": w.alice.access_token}, {}),
        "unknown": ({"Authorization": f"Bearer cpt_{secrets.token_urlsafe(32)}"}, {}),
        "logged-out": (dict(w.logged_out.headers), {}),
        "query-token": ({}, {"access_token": w.alice.access_token}),
    }[who]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


async def request(
    w: World, method: str, path: str, body: Body = NOBODY, who: str = "alice"
) -> httpx.Response:
    headers, params = credentials(w, who)
    if callable(body):
        body = body(w)
    kwargs: dict[str, Any] = {}
    if body is not NOBODY:
        raw = body if isinstance(body, Raw) else Raw(json.dumps(body).encode())
        if raw.content_type:
            headers["Content-Type"] = raw.content_type
        kwargs["content"] = _chunks(raw.content) if raw.chunked else raw.content
    if params:
        kwargs["params"] = params
    return await w.client.request(method, w.path(path), headers=headers, **kwargs)


def assert_problem(r: httpx.Response, status: int | None, code: str | None) -> dict[str, Any]:
    """An RFC 9457 problem with this status and code (``None``: any 4xx and any code)."""
    if status is None:
        assert 400 <= r.status_code < 500, f"{r.status_code} {r.text[:300]}"
        status = r.status_code
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json", r.headers["content-type"]
    problem = r.json()
    assert isinstance(problem, dict)
    assert isinstance(problem.get("type"), str) and ":" in problem["type"], problem  # a URI
    assert isinstance(problem.get("title"), str) and problem["title"].strip(), problem
    assert problem.get("status") == status, problem
    assert isinstance(problem.get("detail"), str) and problem["detail"].strip(), problem
    assert isinstance(problem.get("code"), str) and problem["code"], problem
    assert code is None or problem["code"] == code, problem
    if status == 401:
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
    if status == 405:
        assert r.headers.get("allow"), r.headers
    return problem


async def assert_refused(w: World, r: httpx.Response, status: int | None, code: str | None) -> None:
    """The request got its problem, gave nothing away and wrote nothing."""
    assert_problem(r, status, code)
    for secret in w.secrets():
        assert secret not in r.text, "a refusal echoed a password or an access token"
    after = await snapshot(w.db)
    w.clean = after == w.baseline
    assert w.clean, f"a refused request changed the database: {changes(w.baseline, after)}"


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


def _apply(obj: dict[str, Any], changes: dict[str, Any], w: World) -> dict[str, Any]:
    out = dict(obj)
    for name, value in changes.items():
        value = value(w) if callable(value) else value
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def megolm(plaintext: bytes = b"hello", **changes: Any) -> Callable[[World], dict[str, Any]]:
    """alice's real Megolm envelope with some fields changed (a callable value gets the world)."""
    return lambda w: _apply(w.alice.megolm(plaintext), changes, w)


def olm(plaintext: bytes = b"room key", **changes: Any) -> Callable[[World], dict[str, Any]]:
    """A to-device request: alice's real Olm envelope for bob's device, some fields changed.

    ``type`` and ``body`` change the Olm message inside ``ciphertext``; other names change the
    envelope itself."""

    def build(w: World) -> dict[str, Any]:
        env = w.alice.olm_to(w.bob.curve, w.bob.curve, plaintext)
        inner = {k: v for k, v in changes.items() if k in ("type", "body")}
        outer = {k: v for k, v in changes.items() if k not in inner}
        env["ciphertext"] = {w.bob.curve: _apply(env["ciphertext"][w.bob.curve], inner, w)}
        return to_bob(_apply(env, outer, w), w)

    return build


def to_bob(envelope: Any, w: World) -> dict[str, Any]:
    return {"messages": {w.bob.user_id: {w.bob.device_id: envelope}}}


def device_keys(**changes: Any) -> Callable[[World], dict[str, Any]]:
    """alice's signed device keys, changed *after* signing."""
    return lambda w: {"device_keys": _apply(w.alice.device_keys(), changes, w)}


def signed_keys(dev: str, n: int = 1) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"one_time_keys": getattr(w, dev).one_time_keys(n)}


def _other_device_keys(w: World) -> dict[str, Any]:
    """Keys that are validly self-signed for alice's device id, but are not her keys."""
    impostor = TestDevice(w.alice.user_id, w.alice.device_id, w.alice.access_token)
    return {"device_keys": impostor.device_keys()}


def signed_device_keys(**changes: Any) -> Callable[[World], dict[str, Any]]:
    """alice's device keys, changed *before* signing (so the signature verifies)."""

    def build(w: World) -> dict[str, Any]:
        keys = w.alice.device_keys()
        keys.pop("signatures")
        return {"device_keys": w.alice.sign(_apply(keys, changes, w))}

    return build


def _padded_key(w: World) -> str:
    return w.alice.curve + "="


def _fallback_without_flag(w: World) -> dict[str, Any]:
    ((key_id, key),) = w.alice.fallback_key().items()
    key.pop("signatures")
    key.pop("fallback")
    return {"fallback_keys": {key_id: w.alice.sign(key)}}


def _signed_by_bob(w: World) -> dict[str, Any]:
    keys = w.alice.device_keys()
    sig = w.bob.account.sign(matrix_signable(keys)).to_base64()
    return {"device_keys": {**keys, "signatures": {w.alice.user_id: {
        f"ed25519:{w.alice.device_id}": sig}}}}  # fmt: skip


def _reused_key_id(w: World) -> dict[str, Any]:
    key_id = next(iter(w.alice_otks))
    other = w.alice.sign({"key": w.bob.curve})
    return {"one_time_keys": {key_id: other}}


def _one_good_one_bad_otk(w: World) -> dict[str, Any]:
    keys = w.alice.one_time_keys(2)
    bad_id = sorted(keys)[1]
    keys[bad_id] = {**keys[bad_id], "key": w.bob.curve}  # the signature no longer covers it
    return {"one_time_keys": keys}


def _otk_extra(extra: dict[str, Any]) -> Callable[[World], dict[str, Any]]:
    def build(w: World) -> dict[str, Any]:
        ((key_id, key),) = w.alice.one_time_keys(1).items()
        return {"one_time_keys": {key_id: {**key, **extra}}}

    return build


def _otk_id(key_id: str) -> Callable[[World], dict[str, Any]]:
    def build(w: World) -> dict[str, Any]:
        ((_, key),) = w.alice.one_time_keys(1).items()
        return {"one_time_keys": {key_id: key}}

    return build


def _otk_surrogate_id(w: World) -> Raw:
    ((_, key),) = w.alice.one_time_keys(1).items()
    return Raw(json.dumps({"one_time_keys": {"signed_curve25519:\ud800": key}}).encode())


def _otk_surrogate_in_signatures(w: World) -> Raw:
    ((key_id, key),) = w.alice.one_time_keys(1).items()
    key["signatures"][w.alice.user_id]["\ud800"] = "x"
    return Raw(json.dumps({"one_time_keys": {key_id: key}}).encode())


def _deep_signed_device_keys(w: World) -> Raw:
    """alice's signed device keys plus a field nested 1,020 deep (orjson parses up to 1,024).

    The signature cannot verify, but the server must canonicalise the object to find out."""
    keys = {**w.alice.device_keys(), "x": "DEEP"}
    text = json.dumps({"device_keys": keys}).replace('"DEEP"', "[" * 1020 + "]" * 1020)
    return Raw(text.encode())


def _to_two(first: Any, second: Any) -> Callable[[World], dict[str, Any]]:
    """A to-device request for bob's and carol's devices."""

    def build(w: World) -> dict[str, Any]:
        one, two = (x(w) if callable(x) else x for x in (first, second))
        return {"messages": {w.bob.user_id: {w.bob.device_id: one},
                             w.carol.user_id: {w.carol.device_id: two}}}  # fmt: skip

    return build


def _olm_env(w: World) -> dict[str, Any]:
    return w.alice.olm_to(w.bob.curve, w.bob.curve)


def _olm_for_seventeen(w: World) -> dict[str, Any]:
    env = w.alice.olm_to(w.bob.curve, w.bob.curve)
    part = next(iter(env["ciphertext"].values()))
    env["ciphertext"] = {TestDevice("@x", "X", "t").curve: part for _ in range(17)}
    return to_bob(env, w)


def _olm_recipient(recipient: str) -> Callable[[World], dict[str, Any]]:
    def build(w: World) -> dict[str, Any]:
        env = w.alice.olm_to(w.bob.curve, w.bob.curve)
        env["ciphertext"] = {recipient: next(iter(env["ciphertext"].values()))}
        return to_bob(env, w)

    return build


OVER_1MIB = b'{"pad": "' + b"a" * (1 << 20) + b'"}'
DEEP = b"[" * 5000 + b"]" * 5000
HELLO_B64 = base64.b64encode(b"hello, this is not encrypted").decode()

# --------------------------------------------------------------------------------------------

B_CHUNKED = (
    "a body over the 1 MiB limit sent without Content-Length gets 400 'bad_request' (title "
    "'There was an error parsing the body') on the routes whose body FastAPI parses "
    "(POST /v1/accounts, /v1/login, /v1/keys/one-time, /v1/keys/claim, /v1/conversations), not "
    "413 'payload_too_large': http/middleware.py BodyLimit raises _TooLarge from inside "
    "request.body(), and fastapi/routing.py's request handler turns any exception while "
    "reading the body into HTTPException(400) before BodyLimit can answer 413"
)

# --------------------------------------------------------------------------------------------
# The cases: (id, method, path, body, status, code); bodies and paths are filled in per world
# --------------------------------------------------------------------------------------------

# fmt: off


# Every authenticated route, with a body that would be accepted: only the token is wrong.
AUTH_ROUTES: list[tuple[str, str, Body]] = [
    (POST, "/v1/logout", NOBODY),
    (GET, "/v1/devices", NOBODY),
    (DELETE, "/v1/devices/{alice_dev}", NOBODY),
    (POST, KEYS, signed_keys("alice")),
    (POST, QUERY, lambda w: {"device_keys": {w.bob.user_id: []}}),
    (POST, CLAIM, lambda w: {"one_time_keys": {w.bob.user_id: {
        w.bob.device_id: "signed_curve25519"}}}),
    (GET, "/v1/users/{bob}/devices", NOBODY),
    (PUT, TD, olm()),
    (POST, CONVS, {"kind": "group", "members": []}),
    (GET, CONVS, NOBODY),
    (GET, G, NOBODY),
    (POST, G + "/members/{eve}", NOBODY),
    (DELETE, G + "/members/{carol}", NOBODY),
    (POST, G + "/leave", NOBODY),
    (PUT, MSG, megolm()),
    (GET, HIST, NOBODY),
    (GET, SYNC, NOBODY),
]
AUTH_FAILURES = [
    ("anonymous", "missing_token"),
    ("basic", "missing_token"),
    ("bearer-blank", "missing_token"),
    ("no-scheme", "missing_token"),
    ("query-token", "missing_token"),
    ("unknown", "invalid_token"),
    ("logged-out", "invalid_token"),
]
AUTH_CASES = [
    case(f"{who}-{m}-{p}", m, p, body, 401, code, who=who)
    for m, p, body in AUTH_ROUTES
    for who, code in AUTH_FAILURES
]

# Every route that takes a body: (method, path, code for a JSON value that is not an object,
# whether the body is parsed by FastAPI/pydantic rather than by deps.json_body()).
BODY_ROUTES = [
    (POST, "/v1/accounts", "invalid_request", True),
    (POST, "/v1/login", "invalid_request", True),
    (POST, KEYS, "invalid_input", False),
    (POST, QUERY, "invalid_input", False),
    (POST, CLAIM, "invalid_input", False),
    (PUT, TD, "invalid_input", False),
    (POST, CONVS, "invalid_request", True),
    (PUT, MSG, "not_encrypted", False),
]


def _body_cases(m: str, p: str, not_object: str, pydantic: bool) -> list[ParameterSet]:
    # pydantic reads an absent or non-JSON body as a missing field; json_body() as bad JSON
    not_json = (422, "invalid_request") if pydantic else (400, "malformed_json")
    return [
        case(f"truncated-{m}-{p}", m, p, Raw(b'{"a": '), 400, "malformed_json"),
        case(f"trailing-junk-{m}-{p}", m, p, Raw(b"{} x"), 400, "malformed_json"),
        case(f"single-quotes-{m}-{p}", m, p, Raw(b"{'a': 1}"), 400, "malformed_json"),
        case(f"nul-{m}-{p}", m, p, Raw(b"\x00"), 400, "malformed_json"),
        case(f"not-utf8-{m}-{p}", m, p, Raw(b'{"a": "\xff\xfe"}'), 400, "malformed_json"),
        case(f"lone-surrogate-{m}-{p}", m, p, Raw(b'{"a": "\\ud800"}'), 400, "malformed_json"),
        case(f"deep-{m}-{p}", m, p, Raw(DEEP), 400, "malformed_json"),
        case(f"array-{m}-{p}", m, p, [], 422, not_object),
        case(f"string-{m}-{p}", m, p, "hello", 422, not_object),
        case(f"number-{m}-{p}", m, p, 42, 422, not_object),
        case(f"null-{m}-{p}", m, p, None, 422, not_object),
        case(f"empty-{m}-{p}", m, p, Raw(b""), *not_json),
        case(f"text-plain-{m}-{p}", m, p, Raw(b"hello", "text/plain"), *not_json),
        case(f"over-1mib-{m}-{p}", m, p, Raw(OVER_1MIB), 413, "payload_too_large"),
        case(f"over-1mib-chunked-{m}-{p}", m, p, Raw(OVER_1MIB, chunked=True), 413,
             "payload_too_large"),
    ]


BODY_CASES = [c for route in BODY_ROUTES for c in _body_cases(*route)]

ACCOUNT_CASES = [
    case("register-username-number", POST, "/v1/accounts", {**CREDS, "username": 42}, 422,
         "invalid_request"),
    case("register-password-null", POST, "/v1/accounts", {**CREDS, "password": None}, 422,
         "invalid_request"),
    case("register-missing-password", POST, "/v1/accounts", {"username": "newbie"}, 422,
         "invalid_request"),
    case("register-extra-field", POST, "/v1/accounts", {**CREDS, "admin": True}, 422,
         "invalid_request"),
    case("register-empty-password", POST, "/v1/accounts", {**CREDS, "password": ""}, 422,
         "invalid_password"),
    case("register-short-password", POST, "/v1/accounts", {**CREDS, "password": "1234567"}, 422,
         "invalid_password"),
    case("register-long-password", POST, "/v1/accounts", {**CREDS, "password": "p" * 1025}, 422,
         "invalid_request"),
    case("register-username-upper", POST, "/v1/accounts", {**CREDS, "username": "Newbie"}, 422,
         "invalid_username"),
    case("register-username-short", POST, "/v1/accounts", {**CREDS, "username": "ab"}, 422,
         "invalid_username"),
    case("register-username-digit-first", POST, "/v1/accounts", {**CREDS, "username": "1ab"},
         422, "invalid_username"),
    case("register-username-33", POST, "/v1/accounts", {**CREDS, "username": "a" * 33}, 422,
         "invalid_username"),
    case("register-username-space", POST, "/v1/accounts", {**CREDS, "username": "new bie"}, 422,
         "invalid_username"),
    case("register-username-at", POST, "/v1/accounts", {**CREDS, "username": "@newbie"}, 422,
         "invalid_username"),
    case("register-username-empty", POST, "/v1/accounts", {**CREDS, "username": ""}, 422,
         "invalid_username"),
    case("register-username-unicode", POST, "/v1/accounts", {**CREDS, "username": "nëwbie"},
         422, "invalid_username"),
    case("register-username-nul", POST, "/v1/accounts", {**CREDS, "username": "new\x00"}, 422,
         "nul_character"),
    case("register-username-surrogate", POST, "/v1/accounts",
         Raw(b'{"username": "new\\ud800", "password": "correct horse"}'), 400, "malformed_json"),
    case("register-taken", POST, "/v1/accounts", {**CREDS, "username": "alice"}, 409,
         "username_taken"),
    case("login-wrong-password", POST, "/v1/login", {"username": "alice", "password": "x" * 12},
         401, "invalid_credentials"),
    case("login-unknown-user", POST, "/v1/login", {**CREDS, "username": "nobody"}, 401,
         "invalid_credentials"),
    case("login-invalid-username", POST, "/v1/login", {**CREDS, "username": "Alice"}, 401,
         "invalid_credentials"),
    case("login-empty-password", POST, "/v1/login", {"username": "alice", "password": ""}, 401,
         "invalid_credentials"),
    case("login-missing-username", POST, "/v1/login", {"password": api.PASSWORD}, 422,
         "invalid_request"),
    case("login-device-name-101", POST, "/v1/login",
         {**CREDS, "username": "alice", "device_name": "d" * 101}, 422, "invalid_request"),
    case("login-device-name-number", POST, "/v1/login",
         {**CREDS, "username": "alice", "device_name": 5}, 422, "invalid_request"),
    case("login-extra-field", POST, "/v1/login", {**CREDS, "username": "alice", "x": 1}, 422,
         "invalid_request"),
    case("delete-unknown-device", DELETE, "/v1/devices/NOSUCHDEVI", NOBODY, 404,
         "device_not_found"),
    case("delete-other-users-device", DELETE, "/v1/devices/{bob_dev}", NOBODY, 404,
         "device_not_found"),
    case("delete-logged-out-device", DELETE, "/v1/devices/{gone_dev}", NOBODY, 404,
         "device_not_found"),
    case("delete-device-junk-id", DELETE, "/v1/devices/" + "%ED%A0%80" * 20, NOBODY, 404,
         "device_not_found"),
]

KEY_CASES = [
    case("keys-for-other-users-device", POST, KEYS,
         lambda w: {"device_keys": w.bob.device_keys()}, 422, "invalid_input"),
    case("keys-naming-other-device", POST, KEYS,
         device_keys(device_id=lambda w: w.bob.device_id), 422, "invalid_input"),
    case("keys-naming-other-user", POST, KEYS, device_keys(user_id=lambda w: w.bob.user_id),
         422, "invalid_input"),
    case("keys-old-algorithm-names", POST, KEYS,
         signed_device_keys(algorithms=["olm.v1", "megolm.v1"]), 422, "unsupported_algorithm"),
    case("keys-one-old-algorithm-name", POST, KEYS, signed_device_keys(algorithms=[
         "m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2", "olm.v1"]), 422,
         "unsupported_algorithm"),
    case("keys-wrong-algorithms", POST, KEYS, device_keys(algorithms=["olm.v1"]), 422,
         "unsupported_algorithm"),
    case("keys-unknown-algorithm", POST, KEYS, signed_device_keys(algorithms=[
         "m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2", "x.plaintext"]), 422,
         "unsupported_algorithm"),
    case("keys-without-megolm", POST, KEYS, signed_device_keys(
         algorithms=["m.olm.v1.curve25519-aes-sha2"]), 422, "unsupported_algorithm"),
    case("keys-algorithms-not-list", POST, KEYS, signed_device_keys(
         algorithms="m.olm.v1.curve25519-aes-sha2"), 422, "invalid_input"),
    case("keys-missing-keys", POST, KEYS, device_keys(keys=DROP), 422, "invalid_input"),
    case("keys-malformed-key", POST, KEYS, device_keys(keys=lambda w: {
         f"curve25519:{w.alice.device_id}": "xx", f"ed25519:{w.alice.device_id}": "yy"}),
         422, "invalid_input"),
    case("keys-padded-base64", POST, KEYS, signed_device_keys(keys=lambda w: {
         f"curve25519:{w.alice.device_id}": _padded_key(w),
         f"ed25519:{w.alice.device_id}": w.alice.account.ed25519_key.to_base64()}),
         422, "invalid_input"),
    case("keys-junk-signature", POST, KEYS, device_keys(signatures=lambda w: {
         w.alice.user_id: {f"ed25519:{w.alice.device_id}": "not a signature"}}),
         422, "invalid_signature"),
    case("keys-signature-number", POST, KEYS, device_keys(signatures=lambda w: {
         w.alice.user_id: {f"ed25519:{w.alice.device_id}": 7}}), 422, "invalid_signature"),
    case("keys-unsigned", POST, KEYS, device_keys(signatures=DROP), 422, "invalid_signature"),
    case("keys-signed-by-another-key", POST, KEYS, _signed_by_bob, 422, "invalid_signature"),
    case("keys-tampered-after-signing", POST, KEYS, device_keys(extra="added later"), 422,
         "invalid_signature"),
    case("keys-changed-for-device", POST, KEYS, _other_device_keys, 409, "device_keys_changed"),
    case("keys-extra-top-level", POST, KEYS,
         lambda w: {"device_keys": w.alice.device_keys(), "x": 1}, 422, "invalid_input"),
    case("keys-not-object", POST, KEYS, {"device_keys": "keys"}, 422, "invalid_input"),
    case("keys-over-4kib", POST, KEYS, device_keys(pad="a" * 17_000), 413, "json_too_large"),
    case("keys-deeply-nested", POST, KEYS, _deep_signed_device_keys, 422, "json_too_deep"),
    case("keys-good-device-keys-bad-otk", POST, KEYS, lambda w: {
         "device_keys": w.alice.device_keys(), **_one_good_one_bad_otk(w)}, 422,
         "invalid_signature"),
    case("otk-before-device-keys", POST, OTK, signed_keys("dave"), 409, "device_keys_missing",
         who="dave"),
    case("otk-key-id-reused", POST, OTK, _reused_key_id, 409, "key_id_reused"),
    case("otk-over-200-unclaimed", POST, OTK, signed_keys("carol"), 422, "too_many_keys",
         who="carol"),
    case("otk-101-in-one-upload", POST, OTK, signed_keys("alice", 101), 422, "invalid_input"),
    case("otk-bad-signature-after-good", POST, OTK, _one_good_one_bad_otk, 422,
         "invalid_signature"),
    case("otk-unsigned", POST, OTK, lambda w: {"one_time_keys": {"signed_curve25519:A": {
         "key": w.alice.curve}}}, 422, "invalid_signature"),
    case("otk-not-a-key", POST, OTK, {"one_time_keys": {"signed_curve25519:A": {"key": "xx"}}},
         422, "invalid_input"),
    case("otk-unsigned-algorithm", POST, OTK, _otk_id("curve25519:AAAAAQ"), 422,
         "unsupported_algorithm"),
    case("otk-wrong-algorithm", POST, OTK, _otk_id("ed25519:AAAAAQ"), 422, "invalid_input"),
    case("otk-empty-key-id", POST, OTK, _otk_id("signed_curve25519:"), 422, "invalid_input"),
    case("otk-key-id-65", POST, OTK, _otk_id("signed_curve25519:" + "k" * 65), 422,
         "invalid_input"),
    case("otk-extra-field", POST, OTK, _otk_extra({"note": "hi"}), 422, "invalid_input"),
    case("otk-with-fallback-flag", POST, OTK, _otk_extra({"fallback": True}), 422,
         "invalid_input"),
    case("otk-value-not-object", POST, OTK, {"one_time_keys": {"signed_curve25519:A": "k"}},
         422, "invalid_input"),
    case("otk-keys-array", POST, OTK, {"one_time_keys": []}, 422, "invalid_input"),
    case("otk-extra-top-level", POST, OTK, {"one_time_keys": {}, "x": 1}, 422,
         "invalid_input"),
    case("otk-two-fallback-keys", POST, OTK, lambda w: {"fallback_keys": w.alice.one_time_keys(2)},
         422, "invalid_input"),
    case("fallback-without-flag", POST, OTK, _fallback_without_flag, 422, "invalid_input"),
    case("otk-surrogate-key-id", POST, OTK, _otk_surrogate_id, 400, "malformed_json"),
    case("otk-surrogate-in-signatures", POST, OTK, _otk_surrogate_in_signatures, 400,
         "malformed_json"),
    case("query-not-a-user-id", POST, QUERY, {"device_keys": {"bob": []}}, 422,
         "invalid_user_id"),
    case("query-old-user-id", POST, QUERY, {"device_keys": {"@bob": []}}, 422,
         "invalid_user_id"),
    case("query-foreign-user", POST, QUERY, {"device_keys": {u("bob", "matrix.org"): []}}, 422,
         "foreign_user_id"),
    case("query-devices-not-list", POST, QUERY, {"device_keys": {u("bob"): "X"}}, 422,
         "invalid_input"),
    case("query-missing", POST, QUERY, {}, 422, "invalid_input"),
    case("query-extra-top-level", POST, QUERY, {"device_keys": {}, "x": 1}, 422, "invalid_input"),
    case("query-timeout-negative", POST, QUERY, {"device_keys": {}, "timeout": -1}, 422,
         "invalid_input"),
    case("query-1001-users", POST, QUERY, {"device_keys": {
         u(f"user{i:04d}"): [] for i in range(1001)}}, 422, "invalid_input"),
    case("claim-not-a-user-id", POST, CLAIM, {"one_time_keys": {"bob": {
         "X": "signed_curve25519"}}}, 422, "invalid_user_id"),
    case("claim-foreign-user", POST, CLAIM, {"one_time_keys": {u("bob", "example.org:8448"): {
         "X": "signed_curve25519"}}}, 422, "foreign_user_id"),
    case("claim-unsigned-algorithm", POST, CLAIM, lambda w: {"one_time_keys": {w.bob.user_id: {
         w.bob.device_id: "curve25519"}}}, 422, "unsupported_algorithm"),
    case("claim-devices-not-object", POST, CLAIM, {"one_time_keys": {u("bob"): ["X"]}}, 422,
         "invalid_input"),
    case("claim-devices-array", POST, CLAIM, {"one_time_keys": []}, 422, "invalid_input"),
    case("claim-missing-devices", POST, CLAIM, {}, 422, "invalid_input"),
    case("claim-old-body", POST, CLAIM, {"devices": {u("bob"): ["X"]}}, 422, "invalid_input"),
    case("claim-1001-devices", POST, CLAIM, {"one_time_keys": {u("bob"): {
         f"D{i}": "signed_curve25519" for i in range(1001)}}}, 422, "invalid_input"),
    case("claim-surrogate-device-id", POST, CLAIM, Raw(
         b'{"one_time_keys": {"@bob:clearpost.localhost": {"\\ud800": "signed_curve25519"}}}'),
         400, "malformed_json"),
    case("user-devices-unknown-user", GET, "/v1/users/@nobody:clearpost.localhost/devices",
         NOBODY, 404, "user_not_found"),
    case("user-devices-not-a-user-id", GET, "/v1/users/bob/devices", NOBODY, 422,
         "invalid_user_id"),
    case("user-devices-old-user-id", GET, "/v1/users/@bob/devices", NOBODY, 422,
         "invalid_user_id"),
    case("user-devices-foreign-user", GET, "/v1/users/@bob:matrix.org/devices", NOBODY, 422,
         "foreign_user_id"),
]

TO_DEVICE_CASES = [
    case("todev-txn-65", PUT, "/v1/to-device/m.room.encrypted/" + "t" * 65, olm(), 400,
         "invalid_txn_id"),
    case("todev-txn-space", PUT, "/v1/to-device/m.room.encrypted/a%20b", olm(), 400,
         "invalid_txn_id"),
    case("todev-txn-unicode", PUT, "/v1/to-device/m.room.encrypted/%C3%A9", olm(), 400,
         "invalid_txn_id"),
    case("todev-plaintext-room-key", PUT, "/v1/to-device/m.room_key/{txn}", lambda w: to_bob({
         "algorithm": "m.megolm.v1.aes-sha2", "room_id": "!c_x:" + S, "session_id": "s",
         "session_key": "k"}, w), 422, "not_encrypted"),
    case("todev-plaintext-key-request", PUT, "/v1/to-device/m.room_key_request/{txn}",
         lambda w: to_bob({"action": "request", "requesting_device_id": "X", "request_id": "r"},
         w), 422, "not_encrypted"),
    case("todev-plaintext-withheld", PUT, "/v1/to-device/m.room_key.withheld/{txn}",
         lambda w: to_bob({"algorithm": "m.megolm.v1.aes-sha2", "code": "m.unverified",
         "reason": "no", "room_id": "!c_x:" + S, "session_id": "s", "sender_key": "k"}, w),
         422, "not_encrypted"),
    case("todev-olm-as-other-event-type", PUT, "/v1/to-device/m.room.message/{txn}", olm(), 422,
         "not_encrypted"),
    case("todev-old-route", PUT, "/v1/to-device/{txn}", olm(), 404, "not_found"),
    case("todev-plaintext", PUT, TD, lambda w: to_bob({"body": "hello"}, w), 422,
         "not_encrypted"),
    case("todev-plaintext-string", PUT, TD, lambda w: to_bob("hello", w), 422, "not_encrypted"),
    case("todev-megolm", PUT, TD, lambda w: to_bob(w.alice.megolm(), w), 422, "not_encrypted"),
    case("todev-old-algorithm-name", PUT, TD, olm(algorithm="olm.v1"), 422, "not_encrypted"),
    case("todev-unknown-algorithm", PUT, TD, olm(algorithm="m.olm.v2.curve25519-aes-sha2"), 422,
         "not_encrypted"),
    case("todev-padded-body", PUT, TD, lambda w: olm(body=olm()(w)["messages"][w.bob.user_id][
         w.bob.device_id]["ciphertext"][w.bob.curve]["body"] + "==")(w), 422, "invalid_envelope"),
    case("todev-msgid-not-string", PUT, TD, olm(**{"org.matrix.msgid": 5}), 422,
         "invalid_envelope"),
    case("todev-junk-body", PUT, TD, olm(body="!!! not base64 !!!"), 422, "invalid_envelope"),
    case("todev-plaintext-as-base64", PUT, TD, olm(body=HELLO_B64), 422, "invalid_envelope"),
    case("todev-truncated", PUT, TD, lambda w: olm(body=olm()(w)["messages"][w.bob.user_id][
         w.bob.device_id]["ciphertext"][w.bob.curve]["body"][:40])(w), 422, "invalid_envelope"),
    case("todev-type-2", PUT, TD, olm(type=2), 422, "invalid_envelope"),
    case("todev-type-string", PUT, TD, olm(type="0"), 422, "invalid_envelope"),
    case("todev-type-bool", PUT, TD, olm(type=False), 422, "invalid_envelope"),
    case("todev-type-float", PUT, TD, olm(type=0.0), 422, "invalid_envelope"),
    case("todev-type-float-one", PUT, TD, olm(type=1.0), 422, "invalid_envelope"),
    case("todev-ciphertext-empty", PUT, TD, olm(ciphertext={}), 422, "invalid_envelope"),
    case("todev-ciphertext-string", PUT, TD, olm(ciphertext="abc"), 422, "invalid_envelope"),
    case("todev-17-recipients", PUT, TD, _olm_for_seventeen, 422, "invalid_envelope"),
    case("todev-recipient-not-a-key", PUT, TD, _olm_recipient("bob"), 422, "invalid_envelope"),
    case("todev-sender-key-junk", PUT, TD, olm(sender_key="junk"), 422, "invalid_envelope"),
    case("todev-sender-key-missing", PUT, TD, olm(sender_key=DROP), 422, "invalid_envelope"),
    case("todev-sender-key-of-bob", PUT, TD, olm(sender_key=lambda w: w.bob.curve), 422,
         "invalid_envelope"),
    case("todev-extra-field", PUT, TD, olm(body_plain="hello"), 422, "invalid_envelope"),
    case("todev-from-device-without-keys", PUT, TD, olm(), 409, "device_keys_missing",
         who="dave"),
    case("todev-good-then-plaintext", PUT, TD, _to_two(_olm_env, {"body": "hi"}), 422,
         "not_encrypted"),
    case("todev-messages-missing", PUT, TD, {"msgs": {}}, 422, "invalid_input"),
    case("todev-messages-array", PUT, TD, {"messages": []}, 422, "invalid_input"),
    case("todev-messages-empty", PUT, TD, {"messages": {}}, 422, "invalid_input"),
    case("todev-no-devices", PUT, TD, {"messages": {u("bob"): {}}}, 422, "invalid_input"),
    case("todev-extra-top-level", PUT, TD, lambda w: {**olm()(w), "x": 1}, 422, "invalid_input"),
    case("todev-not-a-user-id", PUT, TD, lambda w: {"messages": {"bob": {"X": _olm_env(w)}}},
         422, "invalid_user_id"),
    case("todev-old-user-id", PUT, TD, lambda w: {"messages": {"@bob": {"X": _olm_env(w)}}},
         422, "invalid_user_id"),
    case("todev-foreign-user", PUT, TD, lambda w: {"messages": {u("bob", "matrix.org"): {
         "X": _olm_env(w)}}}, 422, "foreign_user_id"),
    case("todev-devices-not-object", PUT, TD, {"messages": {u("bob"): ["X"]}}, 422,
         "invalid_input"),
    case("todev-envelope-over-64kib", PUT, TD, olm(b"k" * 60_000), 413, "payload_too_large"),
]

CONVERSATION_CASES = [
    case("create-unknown-kind", POST, CONVS, {"kind": "channel", "members": []}, 422,
         "invalid_request"),
    case("create-missing-kind", POST, CONVS, {"members": []}, 422, "invalid_request"),
    case("create-members-string", POST, CONVS, {"kind": "group", "members": u("bob")}, 422,
         "invalid_request"),
    case("create-members-numbers", POST, CONVS, {"kind": "group", "members": [1]}, 422,
         "invalid_request"),
    case("create-extra-field", POST, CONVS, {"kind": "group", "members": [], "name": "x"}, 422,
         "invalid_request"),
    case("create-direct-two-others", POST, CONVS, {"kind": "direct", "members": [u("bob"),
         u("carol")]}, 422, "invalid_members"),
    case("create-direct-nobody", POST, CONVS, {"kind": "direct", "members": []}, 422,
         "invalid_members"),
    case("create-direct-self", POST, CONVS, {"kind": "direct", "members": [u("alice")]}, 422,
         "invalid_members"),
    case("create-direct-unknown", POST, CONVS, {"kind": "direct", "members": [u("nobody")]}, 404,
         "user_not_found"),
    case("create-group-unknown", POST, CONVS, {"kind": "group", "members": [u("bob"), u("nobody")]},
         404, "user_not_found"),
    case("create-group-not-a-user-id", POST, CONVS, {"kind": "group", "members": ["bob"]}, 422,
         "invalid_user_id"),
    case("create-group-old-user-id", POST, CONVS, {"kind": "group", "members": ["@bob"]}, 422,
         "invalid_user_id"),
    case("create-group-foreign-user", POST, CONVS, {"kind": "group", "members": [
         u("bob"), u("bob", "matrix.org")]}, 422, "foreign_user_id"),
    case("create-direct-foreign-user", POST, CONVS, {"kind": "direct", "members": [
         u("bob", "[::1]:8448")]}, 422, "foreign_user_id"),
    case("create-group-bad-server-name", POST, CONVS, {"kind": "group", "members": [
         "@bob:bad_host!"]}, 422, "invalid_user_id"),
    case("create-group-over-256", POST, CONVS, {"kind": "group", "members": [
         u(f"user{i:03d}") for i in range(256)]}, 422, "too_many_members"),
    case("create-group-1001-members", POST, CONVS, {"kind": "group", "members": [u("bob")] * 1001},
         422, "invalid_request"),
    case("get-unknown", GET, "/v1/conversations/{nowhere}", NOBODY, 404,
         "conversation_not_found"),
    case("get-junk-id", GET, "/v1/conversations/" + "x" * 300, NOBODY, 404,
         "conversation_not_found"),
    case("get-not-member", GET, "/v1/conversations/{private}", NOBODY, 404,
         "conversation_not_found"),
    case("get-after-leaving", GET, "/v1/conversations/{left}", NOBODY, 404,
         "conversation_not_found"),
    case("add-unknown-user", POST, G + "/members/@nobody:" + S, NOBODY, 404, "user_not_found"),
    case("add-not-a-user-id", POST, G + "/members/eve", NOBODY, 422, "invalid_user_id"),
    case("add-old-user-id", POST, G + "/members/@eve", NOBODY, 422, "invalid_user_id"),
    case("add-foreign-user", POST, G + "/members/@eve:matrix.org", NOBODY, 422,
         "foreign_user_id"),
    case("add-to-direct", POST, "/v1/conversations/{direct}/members/{eve}", NOBODY, 409,
         "direct_conversation"),
    case("add-already-member", POST, G + "/members/{bob}", NOBODY, 409, "already_member"),
    case("add-not-member", POST, "/v1/conversations/{private}/members/{eve}", NOBODY, 404,
         "conversation_not_found"),
    case("add-after-leaving", POST, "/v1/conversations/{left}/members/{eve}", NOBODY, 404,
         "conversation_not_found"),
    case("add-unknown-conversation", POST, "/v1/conversations/{nowhere}/members/{eve}", NOBODY,
         404, "conversation_not_found"),
    case("remove-by-non-creator", DELETE, G + "/members/{carol}", NOBODY, 403,
         "not_group_admin", who="bob"),
    case("remove-non-member", DELETE, G + "/members/{eve}", NOBODY, 404, "not_a_member"),
    case("remove-unknown-user", DELETE, G + "/members/@nobody:" + S, NOBODY, 404,
         "not_a_member"),
    case("remove-foreign-user", DELETE, G + "/members/@bob:matrix.org", NOBODY, 422,
         "foreign_user_id"),
    case("remove-from-direct", DELETE, "/v1/conversations/{direct}/members/{bob}", NOBODY, 409,
         "direct_conversation"),
    case("remove-not-member", DELETE, G + "/members/{bob}", NOBODY, 404,
         "conversation_not_found", who="eve"),
    case("remove-unknown-conversation", DELETE, "/v1/conversations/{nowhere}/members/{bob}",
         NOBODY, 404, "conversation_not_found"),
    case("leave-not-member", POST, "/v1/conversations/{private}/leave", NOBODY, 404,
         "conversation_not_found"),
    case("leave-twice", POST, "/v1/conversations/{left}/leave", NOBODY, 404,
         "conversation_not_found"),
    case("leave-unknown", POST, "/v1/conversations/{nowhere}/leave", NOBODY, 404,
         "conversation_not_found"),
    case("history-not-member", GET, "/v1/conversations/{private}/messages", NOBODY, 404,
         "conversation_not_found"),
    case("history-after-leaving", GET, "/v1/conversations/{left}/messages", NOBODY, 404,
         "conversation_not_found"),
    case("history-unknown", GET, "/v1/conversations/{nowhere}/messages", NOBODY, 404,
         "conversation_not_found"),
    case("history-after-negative", GET, HIST + "?after=-1", NOBODY, 400, "invalid_parameter"),
    case("history-after-not-int", GET, HIST + "?after=ten", NOBODY, 400, "invalid_parameter"),
    case("history-after-2-63", GET, HIST + f"?after={2**63}", NOBODY, 400, "invalid_parameter"),
    case("history-limit-0", GET, HIST + "?limit=0", NOBODY, 400, "invalid_parameter"),
    case("history-limit-501", GET, HIST + "?limit=501", NOBODY, 400, "invalid_parameter"),
]

MESSAGE_CASES = [
    case("msg-plaintext", PUT, MSG, {"body": "hello"}, 422, "not_encrypted"),
    case("msg-plaintext-string", PUT, MSG, "hello", 422, "not_encrypted"),
    case("msg-plaintext-text-body", PUT, MSG, Raw(b"hello", "text/plain"), 400,
         "malformed_json"),
    case("msg-old-algorithm-name", PUT, MSG, megolm(algorithm="megolm.v1"), 422,
         "not_encrypted"),
    case("msg-megolm-v2", PUT, MSG, megolm(algorithm="m.megolm.v2.aes-sha2"), 422,
         "not_encrypted"),
    case("msg-padded-ciphertext", PUT, MSG,
         lambda w: megolm(ciphertext=w.alice.megolm()["ciphertext"] + "=")(w), 422,
         "invalid_envelope"),
    case("msg-relates-to-in-the-clear", PUT, MSG, megolm(**{"m.relates_to": {
         "rel_type": "m.thread", "event_id": "$x"}}), 422, "invalid_envelope"),
    case("msg-algorithm-none", PUT, MSG, megolm(algorithm="none"), 422, "not_encrypted"),
    case("msg-algorithm-null", PUT, MSG, megolm(algorithm=None), 422, "not_encrypted"),
    case("msg-algorithm-missing", PUT, MSG, megolm(algorithm=DROP), 422, "not_encrypted"),
    case("msg-olm-envelope", PUT, MSG, _olm_env, 422, "not_encrypted"),
    case("msg-ciphertext-junk", PUT, MSG, megolm(ciphertext="!!! not base64 !!!"), 422,
         "invalid_envelope"),
    case("msg-ciphertext-plaintext-b64", PUT, MSG, megolm(ciphertext=HELLO_B64), 422,
         "invalid_envelope"),
    case("msg-ciphertext-truncated", PUT, MSG,
         lambda w: megolm(ciphertext=w.alice.megolm()["ciphertext"][:-12])(w), 422,
         "invalid_envelope"),
    case("msg-ciphertext-half", PUT, MSG,
         lambda w: megolm(ciphertext=w.alice.megolm()["ciphertext"][:30])(w), 422,
         "invalid_envelope"),
    case("msg-ciphertext-empty", PUT, MSG, megolm(ciphertext=""), 422, "invalid_envelope"),
    case("msg-ciphertext-number", PUT, MSG, megolm(ciphertext=12), 422, "invalid_envelope"),
    case("msg-ciphertext-missing", PUT, MSG, megolm(ciphertext=DROP), 422, "invalid_envelope"),
    case("msg-device-id-of-bob", PUT, MSG, megolm(device_id=lambda w: w.bob.device_id), 422,
         "invalid_envelope"),
    case("msg-device-id-null", PUT, MSG, megolm(device_id=None), 422, "invalid_envelope"),
    case("msg-sender-key-junk", PUT, MSG, megolm(sender_key="junk"), 422, "invalid_envelope"),
    case("msg-sender-key-of-bob", PUT, MSG, megolm(sender_key=lambda w: w.bob.curve), 422,
         "invalid_envelope"),
    case("msg-session-id-129", PUT, MSG, megolm(session_id="s" * 129), 422, "invalid_envelope"),
    case("msg-session-id-number", PUT, MSG, megolm(session_id=1), 422, "invalid_envelope"),
    case("msg-session-id-missing", PUT, MSG, megolm(session_id=DROP), 422, "invalid_envelope"),
    case("msg-plaintext-beside-ciphertext", PUT, MSG, megolm(body="hello"), 422,
         "invalid_envelope"),
    case("msg-from-device-without-keys", PUT, MSG, megolm(), 409, "device_keys_missing",
         who="dave"),
    case("msg-over-64kib", PUT, MSG, megolm(b"m" * 60_000), 413, "payload_too_large"),
    case("msg-over-64kib-chunked", PUT, MSG,
         lambda w: Raw(json.dumps(w.alice.megolm(b"m" * 60_000)).encode(), chunked=True), 413,
         "payload_too_large"),
    case("msg-txn-65", PUT, G + "/messages/" + "t" * 65, megolm(), 400, "invalid_txn_id"),
    case("msg-txn-space", PUT, G + "/messages/a%20b", megolm(), 400, "invalid_txn_id"),
    case("msg-txn-unicode", PUT, G + "/messages/%C3%A9", megolm(), 400, "invalid_txn_id"),
    case("msg-txn-dollar", PUT, G + "/messages/a$b", megolm(), 400, "invalid_txn_id"),
    case("msg-txn-encoded-slash", PUT, G + "/messages/a%2Fb", megolm(), 404, "not_found"),
    case("msg-unknown-conversation", PUT, "/v1/conversations/{nowhere}/messages/{txn}",
         megolm(), 404, "conversation_not_found"),
    case("msg-not-member", PUT, "/v1/conversations/{private}/messages/{txn}", megolm(), 404,
         "conversation_not_found"),
    case("msg-after-leaving", PUT, "/v1/conversations/{left}/messages/{txn}", megolm(), 404,
         "conversation_not_found"),
    case("msg-txn-reused-elsewhere", PUT, "/v1/conversations/{direct}/messages/{used_txn}",
         megolm(), 409, "txn_id_reused"),
]

SYNC_CASES = [
    case("sync-cursor-garbage", GET, SYNC + "?since=garbage", NOBODY, 400, "invalid_cursor"),
    case("sync-cursor-empty", GET, SYNC + "?since=", NOBODY, 400, "invalid_cursor"),
    case("sync-cursor-short", GET, SYNC + "?since=cp1_AAAA", NOBODY, 400, "invalid_cursor"),
    case("sync-cursor-bad-b64", GET, SYNC + "?since=cp1_!!!!!!!!!!!", NOBODY, 400,
         "invalid_cursor"),
    case("sync-cursor-other-prefix", GET, SYNC + "?since=cp2_AAAAAAAAAAA", NOBODY, 400,
         "invalid_cursor"),
    case("sync-cursor-ahead", GET, SYNC + f"?since={encode_cursor(10**12)}", NOBODY, 400,
         "invalid_cursor"),
    case("sync-cursor-2-63", GET, SYNC + f"?since={encode_cursor(2**63)}", NOBODY, 400,
         "invalid_cursor"),
    case("sync-cursor-65-chars", GET, SYNC + "?since=" + "c" * 65, NOBODY, 400,
         "invalid_cursor"),
    case("sync-timeout-negative", GET, SYNC + "?timeout=-1", NOBODY, 400, "invalid_parameter"),
    case("sync-timeout-not-int", GET, SYNC + "?timeout=soon", NOBODY, 400, "invalid_parameter"),
    case("sync-timeout-5000-digits", GET, SYNC + "?timeout=" + "9" * 5000, NOBODY, 400,
         "invalid_parameter"),
]

ROUTING_CASES = [
    case("unknown-path", GET, "/v1/nope", NOBODY, 404, "not_found"),
    case("unknown-version", GET, "/v2/sync", NOBODY, 404, "not_found"),
    case("no such page", GET, "/nothing-here", NOBODY, 404, "not_found"),
    case("members-without-user", POST, G + "/members", NOBODY, 404, "not_found"),
    case("stream-over-http", GET, "/v1/stream", NOBODY, 404, "not_found"),
    case("unknown-path-over-1mib", POST, "/v1/nope", Raw(OVER_1MIB), 413, "payload_too_large"),
    case("get-accounts", GET, "/v1/accounts", NOBODY, 405, "method_not_allowed"),
    case("patch-accounts", "PATCH", "/v1/accounts", {}, 405, "method_not_allowed"),
    case("get-login", GET, "/v1/login", NOBODY, 405, "method_not_allowed"),
    case("post-sync", POST, SYNC, {}, 405, "method_not_allowed"),
    case("delete-conversation", DELETE, G, NOBODY, 405, "method_not_allowed"),
    case("post-message", POST, MSG, megolm(), 405, "method_not_allowed"),
    case("get-message", GET, MSG, NOBODY, 405, "method_not_allowed"),
    case("post-to-device", POST, TD, olm(), 405, "method_not_allowed"),
    case("put-claim", PUT, CLAIM, {"one_time_keys": {}}, 405, "method_not_allowed"),
    case("get-keys", GET, KEYS, NOBODY, 405, "method_not_allowed"),
    case("old-device-keys-route", PUT, "/v1/devices/{alice_dev}/keys", lambda w: {
         "device_keys": w.alice.device_keys()}, 404, "not_found"),
    case("old-one-time-keys-route", POST, "/v1/keys/one-time", signed_keys("alice"), 404,
         "not_found"),
    case("put-devices", PUT, "/v1/devices", NOBODY, 405, "method_not_allowed"),
]

CASES = [
    *AUTH_CASES, *BODY_CASES, *ACCOUNT_CASES, *KEY_CASES, *TO_DEVICE_CASES,
    *CONVERSATION_CASES, *MESSAGE_CASES, *SYNC_CASES, *ROUTING_CASES,
]


# fmt: on


@pytest.mark.parametrize("c", CASES)
async def test_refused_with_problem_and_nothing_written(world: World, c: Case) -> None:
    r = await request(world, c.method, c.path, c.body, c.who)
    await assert_refused(world, r, c.status, c.code)


# --------------------------------------------------------------------------------------------
# A non-member learns nothing; limits that need their own server
# --------------------------------------------------------------------------------------------

CONVERSATION_PROBES = [
    (GET, "/v1/conversations/{conv}", NOBODY),
    (GET, "/v1/conversations/{conv}/messages", NOBODY),
    (POST, "/v1/conversations/{conv}/members/{carol}", NOBODY),
    (DELETE, "/v1/conversations/{conv}/members/{bob}", NOBODY),
    (POST, "/v1/conversations/{conv}/leave", NOBODY),
    (PUT, "/v1/conversations/{conv}/messages/{txn}", megolm()),
]


@pytest.mark.parametrize(("method", "template", "body"), CONVERSATION_PROBES)
@pytest.mark.parametrize("conv", ["{private}", "{left}"])
async def test_non_member_cannot_tell_a_conversation_exists(
    world: World, method: str, template: str, body: Body, conv: str
) -> None:
    """Someone else's conversation and one that never existed give byte-identical answers."""
    exists = await request(world, method, template.replace("{conv}", conv), body)
    nowhere = await request(world, method, template.replace("{conv}", "{nowhere}"), body)
    await assert_refused(world, exists, 404, "conversation_not_found")
    assert (exists.status_code, exists.content) == (nowhere.status_code, nowhere.content)
    assert world.private not in exists.text and world.left not in exists.text


async def test_huge_sync_timeout_is_clamped_not_refused(world: World) -> None:
    r = await request(world, GET, SYNC + f"?timeout={10**30}")
    assert r.status_code == 200, r.text
    after = await snapshot(world.db)
    assert after == world.baseline, changes(world.baseline, after)


async def test_adding_a_member_over_the_group_limit(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path, max_group_members=3))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        a, b, d, e = [await api.user(c, n, keys=False) for n in ("amy", "ben", "dan", "eli")]
        conv = await api.conversation(c, a, "group", b, d)
        db: Database = app.state.services.db
        before = await snapshot(db)
        r = await c.post(f"/v1/conversations/{conv}/members/{e.user_id}", headers=a.headers)
        assert_problem(r, 422, "too_many_members")
        r = await c.post("/v1/conversations", json={"kind": "group", "members": [
            b.user_id, d.user_id, e.user_id]}, headers=a.headers)  # fmt: skip
        assert_problem(r, 422, "too_many_members")
        assert await snapshot(db) == before


# --------------------------------------------------------------------------------------------
# Random input: always a 4xx problem, never a 500, never a write
# --------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=9), inner, max_size=4)
    ),
    max_leaves=12,
)
EDIT = st.one_of(st.just(DROP), JSON_VALUES)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bodies(fields: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """Random JSON, random bytes, or a real request with a few fields replaced or dropped."""
    return st.one_of(
        st.tuples(st.just("json"), JSON_VALUES),
        st.tuples(st.just("bytes"), st.binary(max_size=300)),
        st.tuples(st.just("edit"), st.dictionaries(st.sampled_from(fields), EDIT, min_size=1)),
    )


async def _fuzz(w: World, method: str, path: str, body: Any) -> None:
    r = await request(w, method, path, Raw(body) if isinstance(body, bytes) else body)
    await assert_refused(w, r, None, None)


def _accepted(validate: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
    """Whether the server's own validator lets an envelope through (then it would be stored)."""
    try:
        validate(*args, **kwargs)
    except Exception:  # a crash too: sending it is how the test sees what the server does
        return False
    return True


@FUZZ
@given(body=_bodies(["algorithm", "sender_key", "session_id", "device_id", "ciphertext", "body"]))
async def test_random_message_bodies(lab: Lab, body: tuple[str, Any]) -> None:
    w = await lab.world()
    kind, value = body
    if kind == "edit":
        value = _apply(w.alice.megolm(), value, w)
        assume(not _accepted(validate_megolm_content, value, sender_device=w.alice.device_id,
                             sender_key=w.alice.curve))  # fmt: skip
    await _fuzz(w, PUT, MSG, value)


@FUZZ
@given(body=_bodies(["algorithm", "sender_key", "ciphertext", "type", "body", "extra"]))
async def test_random_to_device_bodies(lab: Lab, body: tuple[str, Any]) -> None:
    w = await lab.world()
    kind, value = body
    if kind == "edit":
        value = olm(**value)(w)
        envelope = value["messages"][w.bob.user_id][w.bob.device_id]
        assume(not _accepted(validate_olm_content, envelope, sender_key=w.alice.curve))
    await _fuzz(w, PUT, TD, value)


def _could_be_valid_conversation(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"kind", "members"}
        and body["kind"] in ("direct", "group")
        and isinstance(body["members"], list)
        and all(isinstance(m, str) and is_user_id(m, S) for m in body["members"])
    )


@FUZZ
@given(body=_bodies(["kind", "members", "name"]))
async def test_random_conversation_bodies(lab: Lab, body: tuple[str, Any]) -> None:
    w = await lab.world()
    kind, value = body
    if kind == "edit":
        value = _apply({"kind": "group", "members": [w.bob.user_id]}, value, w)
    assume(not _could_be_valid_conversation(value))
    await _fuzz(w, POST, CONVS, value)
