"""The seam between the load generator and the server under test.

The generator drives every server through this small interface, so the same workload
(20 users, a 20-member group, 19 direct conversations, the same pre-encrypted Megolm
ciphertexts) can run against Clearpost now and against a peer such as Matrix Synapse
later: a peer needs only a new ``Target`` implementation, not a new generator.

A target never encrypts inside a timed loop: ``encrypt`` runs before any clock starts and
returns a ``Ciphertext`` whose request body is already serialized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from http1 import Connection

__all__ = ["Ciphertext", "Received", "Session", "SyncBatch", "Target"]


@dataclass(slots=True)
class Session:
    """One logged-in device of one user."""

    user_id: str
    device_id: str
    access_token: str
    auth_header: bytes
    """``Authorization: Bearer ...\\r\\n``, formatted once."""
    state: Any = None
    """Whatever the target keeps per device (here: its vodozemac account and group session)."""


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """One message, encrypted ahead of time."""

    key: str
    """The Megolm ciphertext as the target echoes it back in sync: identifies the message."""
    body: bytes
    """The serialized request body that carries it."""
    size: int
    """Bytes of the Megolm message itself (decoded from base64)."""


@dataclass(frozen=True, slots=True)
class Received:
    conversation_id: str
    sender: str
    key: str


@dataclass(slots=True)
class SyncBatch:
    cursor: str
    received_at: float
    """``time.perf_counter()`` when the last byte of the sync response arrived."""
    messages: list[Received] = field(default_factory=list)


class Target(Protocol):
    """What the generator needs from a messaging server."""

    name: str
    health_path: str
    """A cheap GET used to report the generator's ceiling against this server."""

    async def register(self, conn: Connection, username: str, password: str) -> Session:
        """Create the account and log in one device, ready to send and sync."""
        ...

    async def create_group(
        self, conn: Connection, owner: Session, members: Sequence[Session]
    ) -> str: ...

    async def create_direct(self, conn: Connection, a: Session, b: Session) -> str: ...

    def encrypt(self, sender: Session, plaintext: bytes) -> Ciphertext:
        """Encrypt with the sender's outbound Megolm session (not timed)."""
        ...

    async def send(
        self, conn: Connection, sender: Session, conversation_id: str, txn_id: str, ct: Ciphertext
    ) -> None:
        """Send one message; raises on anything but success."""
        ...

    async def sync(
        self, conn: Connection, session: Session, since: str | None, timeout_ms: int
    ) -> SyncBatch:
        """One long-poll. ``since=None`` returns a cursor for "now" and no messages."""
        ...
