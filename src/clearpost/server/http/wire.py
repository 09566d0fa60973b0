"""The response bodies of the HTTP API, as pydantic models for the OpenAPI description only.

The routes build their JSON by hand (orjson, with stored envelopes passed through as
``orjson.Fragment``) and never validate their answers against these models: they are
attached with ``responses={200: {"model": ...}}`` so the description is exact without
costing a serialization pass (the fast path in ``fastpath.py`` answers send, sync and
proofs without FastAPI at all). The fuzz test (``tests/integration/test_openapi_fuzz.py``)
checks real answers against them, so a route that drifts from its model fails CI.

Timestamps are integers: milliseconds since the Unix epoch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BaseModel"]

Millis = int


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ------------------------------------------------------------------------------


class FieldProblem(_Out):
    field: str = Field(description="the offending field, dotted ('' for the whole body)")
    problem: str


class Problem(BaseModel):
    """An RFC 9457 problem. ``code`` is stable and machine-readable; ``detail`` is for people."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:clearpost:problem:conversation_not_found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no such conversation (or you are not a member)",
                    "code": "conversation_not_found",
                }
            ]
        },
    )
    type: str = Field(description="urn:clearpost:problem:<code>")
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="for invalid_request and invalid_parameter: each bad field"
    )


class OAuthError(BaseModel):
    """An RFC 6749 error that also carries the RFC 9457 problem members."""

    model_config = ConfigDict(extra="allow")
    error: str
    error_description: str | None = None
    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    code: str | None = None


# --- accounts and devices ----------------------------------------------------------------


class Registered(_Out):
    user_id: str = Field(examples=["@alice:clearpost.localhost"])


class Session(_Out):
    user_id: str = Field(examples=["@alice:clearpost.localhost"])
    device_id: str = Field(examples=["JLAFKJWSCS"])
    access_token: str = Field(description="send as 'Authorization: Bearer <token>'")


class Device(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "device_id": "JLAFKJWSCS",
                    "display_name": "laptop",
                    "created_at": 1796511463220,
                    "has_keys": True,
                }
            ]
        },
    )

    device_id: str
    display_name: str | None
    created_at: Millis
    has_keys: bool


class Devices(_Out):
    devices: list[Device]


class OneTimeKeyCounts(_Out):
    signed_curve25519: int


class KeyCounts(_Out):
    one_time_key_counts: OneTimeKeyCounts


class Claimed(_Out):
    one_time_keys: dict[str, dict[str, dict[str, dict[str, Any]]]] = Field(
        description="user id -> device id -> {'signed_curve25519:<id>': signed key}; devices "
        'with no key left are left out; a fallback key carries "fallback": true'
    )
    failures: dict[str, Any] = Field(description="always {} (one server, nothing remote)")


class KeysQueried(_Out):
    device_keys: dict[str, dict[str, dict[str, Any]]] = Field(
        description="user id -> device id -> the device keys as signed, plus "
        "unsigned.device_display_name (your own devices only)"
    )
    failures: dict[str, Any] = Field(description="always {} (one server, nothing remote)")


class UserDevice(_Out):
    device_id: str
    display_name: str | None
    device_keys: dict[str, Any] | None = Field(
        description="the device's self-signed keys as uploaded; verify before trusting"
    )


class UserDevices(_Out):
    user_id: str
    devices: list[UserDevice]


class UnknownDevice(_Out):
    user_id: str
    device_id: str


class Queued(_Out):
    queued: int
    unknown_devices: list[UnknownDevice]


# --- conversations, messages, sync -------------------------------------------------------


class Conversation(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "c_eHfaZ47UrksZpeM1DtF_UA",
                    "room_id": "!c_eHfaZ47UrksZpeM1DtF_UA:clearpost.localhost",
                    "kind": "direct",
                    "created_by": "@alice:clearpost.localhost",
                    "created_at": 1796511463433,
                    "members": ["@alice:clearpost.localhost", "@bob:clearpost.localhost"],
                    "last_seq": 7,
                    "joined_from_seq": 0,
                }
            ]
        },
    )

    conversation_id: str
    room_id: str = Field(description="the conversation's Matrix room id")
    kind: Literal["direct", "group"]
    created_by: str
    created_at: Millis
    members: list[str]
    last_seq: int
    joined_from_seq: int = Field(description="you see messages with seq above this")


class Conversations(_Out):
    conversations: list[Conversation]
    total: int = Field(description="how many conversations you are in, on every page")
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class Sent(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "$c_eHfaZ47UrksZpeM1DtF_UA.7",
                    "conversation_id": "c_eHfaZ47UrksZpeM1DtF_UA",
                    "seq": 7,
                    "sent_at": 1796511463433,
                }
            ]
        },
    )

    event_id: str = Field(description="the message's Matrix event id")
    conversation_id: str
    seq: int = Field(description="gap-free per conversation")
    sent_at: Millis


class Message(_Out):
    """A message: a Matrix room event (``m.room.encrypted``) plus Clearpost's fields."""

    type: Literal["m.room.encrypted"]
    event_id: str = Field(description="'$<conversation_id>.<seq>': unique, stable")
    room_id: str = Field(description="'!<conversation_id>:<server_name>'")
    sender: str = Field(description="the sender's user id")
    origin_server_ts: Millis = Field(description="when the server stored it")
    content: dict[str, Any] = Field(description="the m.megolm.v1.aes-sha2 content exactly as sent")
    conversation_id: str
    seq: int = Field(description="gap-free per conversation")
    sender_device: str


class History(_Out):
    messages: list[Message]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")


class ToDeviceEvent(_Out):
    type: Literal["m.room.encrypted"]
    sender: str
    sender_device: str
    content: dict[str, Any] = Field(
        description="the m.olm.v1.curve25519-aes-sha2 content exactly as sent"
    )


class ToDeviceEvents(_Out):
    events: list[ToDeviceEvent]


class DeviceLists(_Out):
    changed: list[str] = Field(description="users whose devices changed or who now share a room")
    left: list[str] = Field(description="users who share no conversation with you any more")


class Event(BaseModel):
    """A membership change (``membership``) or a share intent for you (``share_intent``)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["membership", "share_intent"]


class Sync(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cursor": "cp1_AAAAAAAAAAE",
                    "messages": [],
                    "events": [],
                    "to_device": {"events": []},
                    "device_lists": {"changed": ["@bob:clearpost.localhost"], "left": []},
                    "device_one_time_keys_count": {"signed_curve25519": 48},
                    "device_unused_fallback_key_types": ["signed_curve25519"],
                }
            ]
        },
    )

    cursor: str = Field(description="opaque; pass as ?since= next time")
    messages: list[Message]
    events: list[Event]
    to_device: ToDeviceEvents
    device_lists: DeviceLists
    device_one_time_keys_count: OneTimeKeyCounts
    device_unused_fallback_key_types: list[Literal["signed_curve25519"]]


# --- transparency log --------------------------------------------------------------------


class LogKey(_Out):
    origin: str
    vkey: str = Field(description="the checkpoint signer's note verifier key")
    witnesses: list[str] = Field(
        description="verifier keys of the witnesses whose cosignatures count"
    )


class Entries(_Out):
    start: int
    entries: list[str] = Field(description="base64 of each entry's canonical JSON bytes")


class InclusionProof(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"index": 0, "size": 2, "hashes": ["HGfI8xKLeS6hbM2/8avRsKWWxpjgyrMbjaY5DiVeMvY="]}
            ]
        },
    )

    index: int
    size: int
    hashes: list[str] = Field(description="base64 SHA-256 node hashes (RFC 9162)")


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: int = Field(alias="from")
    to: int
    hashes: list[str] = Field(description="base64 SHA-256 node hashes (RFC 9162)")


class MyEntry(_Out):
    index: int
    entry: str = Field(description="base64 canonical JSON")
    opening: dict[str, Any] | None = Field(
        description="the opening of this entry's own subject commitment (its nonce, and for a "
        "device entry the device id and keys); null for entries before format version 2"
    )
    proof: list[str] | None = Field(description="inclusion proof against the checkpoint")


class MyEntries(_Out):
    user_id: str
    salt: str = Field(description="base64; opens the subject commitments of your entries")
    subject: str
    checkpoint: str | None = Field(description="the signed note the proofs are against")
    size: int | None = Field(description="that checkpoint's size; pass it to later pages")
    total: int = Field(description="how many entries are about you")
    next_start: int | None = Field(description="`start` of the next page; null on the last")
    entries: list[MyEntry]


# --- partners ----------------------------------------------------------------------------


class PublishedAgreement(_Out):
    version: int
    log_index: int
    published_at: Millis
    agreement: dict[str, Any] = Field(description="the agreement exactly as logged")


class PartnerAgreement(_Out):
    partner_id: str
    name: str
    current: PublishedAgreement


class Agreements(_Out):
    partners: list[PartnerAgreement]


class AgreementHistory(_Out):
    partner_id: str
    versions: list[PublishedAgreement]


class ScopeInfo(_Out):
    name: str
    description: str
    endpoints: list[str]
    grant: Literal["user", "partner"]


class ScopeCatalogue(_Out):
    version: int
    scopes: list[ScopeInfo]
    log_index: int | None = Field(description="where this catalogue version was logged")


class CreatedIntent(_Out):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"intent_id": "si_2b1c", "expires_at": 1796597863433, "log_index": 12}]
        },
    )

    intent_id: str
    expires_at: Millis
    log_index: int


class PartnerProfile(_Out):
    id: str = Field(description="a pairwise id: different for every partner")
    display_name: str | None
    log_index: int


class SigningKey(_Out):
    alg: Literal["Ed25519"]
    public_key: str


class ReleasedReport(_Out):
    report_id: str
    kind: Literal["period", "rollup"] = Field(description="a period report or a roll-up")
    period: str
    report: dict[str, Any] = Field(description="the report exactly as signed")
    report_hash: str
    signature: str
    public_key: str
    log_index: int
    released_at: Millis


class Reports(_Out):
    partner_id: str
    budget: dict[str, Any] = Field(
        description="the agreement's privacy budget: per period and per year, spent and left "
        "(docs/reports.md)"
    )
    signing_key: SigningKey
    reports: list[ReleasedReport]


# --- the user's view of partners ---------------------------------------------------------


class ConnectedApp(_Out):
    partner_id: str
    scopes: list[str]
    since: Millis
    last_access: Millis | None
    grant_log_index: int
    revoked_at: Millis | None
    revoke_log_index: int | None


class Apps(_Out):
    apps: list[ConnectedApp]


class Revoked(_Out):
    revoked: str
    log_indexes: list[int]


class PendingIntent(_Out):
    intent_id: str
    partner: str
    partner_name: str
    title: str
    url: str
    link: str = Field(description="the tracking link to put in the share card")
    image_url: str | None
    description: str | None
    expires_at: Millis
    log_index: int


class PendingIntents(_Out):
    share_intents: list[PendingIntent]


# --- OAuth and meta ----------------------------------------------------------------------


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int | None = None
    refresh_token: str | None = None
    scope: str | None = None


class Health(_Out):
    status: Literal["ok"]


class Ready(_Out):
    status: Literal["ok"]
    database: Literal["reachable"]


class Profile(_Out):
    display_name: str | None = Field(description="your choice; null until you set one")


class MySettings(_Out):
    group_adds: Literal["anyone", "nobody"] = Field(description="who may add you to groups")


class Introspection(BaseModel):
    """RFC 7662: ``active`` and, for an active token, its claims."""

    model_config = ConfigDict(extra="allow")
    active: bool


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    scopes_supported: list[str]
    response_types_supported: list[str]
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[str]


# --- key directory (issue 17) --------------------------------------------------------------


class KeyDirKey(_Out):
    vrf_public_key: str = Field(description="base64 of the directory's ECVRF-EDWARDS25519 key")
    heartbeat_seconds: int = Field(description="an epoch is published at least this often")
    log_seconds: int = Field(
        description="log entries about a person are counted in their log: label at most this "
        "often (0: at every epoch), so the newest entries of an access history are proven "
        "complete within about this long"
    )
    log_origin: str = Field(description="the log whose entries carry the epoch roots")


class KeyDirPresent(_Out):
    version: int
    vrf_proof: str = Field(description="base64, 80 bytes (RFC 9381)")
    commitment: str = Field(description="base64, 32 bytes: the leaf's value")
    opening: str | None = Field(default=None, description="base64; only for opened versions")
    value: str | None = Field(default=None, description="base64 of the label's value")


class KeyDirAbsent(_Out):
    version: int
    vrf_proof: str


class KeyDirAnswer(_Out):
    """A lookup, absence or history proof, anchored in the log."""

    label: str = Field(examples=["devices:@alice"])
    epoch: int
    log_index: int = Field(description="the log index of the epoch's `keydir` entry")
    entry: str = Field(description="base64 of that entry's exact bytes")
    checkpoint: str = Field(description="the signed checkpoint the inclusion proof ends at")
    size: int
    inclusion: list[str] = Field(description="RFC 9162 inclusion proof of the entry")
    present: list[KeyDirPresent]
    absent: list[KeyDirAbsent]
    proof: str = Field(description="base64 of the prefix-tree proof (docs/key-directory.md)")


class KeyDirCountEpoch(_Out):
    """An epoch's `keydir` log entry, included in the answer's checkpoint."""

    epoch: int
    log_index: int
    entry: str = Field(description="base64 of the entry's exact bytes")
    inclusion: list[str] = Field(description="RFC 9162 inclusion proof, to the answer's checkpoint")


class KeyDirLogAnswer(KeyDirAnswer):
    """The `log:` label's lookup, and when its epoch's `through` was set."""

    counted: list[KeyDirCountEpoch] = Field(
        description="the first epoch whose `through` is the answer's epoch's, and the epoch "
        "right before it, in epoch order, leaving out the answer's own epoch (so none for "
        "epoch 0): the count is checked to be no older than `log_seconds` plus a minute "
        "(docs/key-directory.md)"
    )


class KeyDirLeaf(_Out):
    index: str = Field(description="base64, 32 bytes")
    commitment: str = Field(description="base64, 32 bytes")


class KeyDirEpoch(_Out):
    """An epoch's changes: what an auditor needs to recompute its root from the last one."""

    epoch: int
    root: str
    previous_root: str | None
    log_index: int
    through: int
    time: Millis
    inserted: list[KeyDirLeaf]
    proof: str = Field(description="base64 of the update proof from the previous root")
