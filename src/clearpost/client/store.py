"""The local device store: one SQLite file per device, sealed with the user's passphrase.

What it holds: the vodozemac Account, Olm sessions, outbound and inbound Megolm sessions
(all as vodozemac pickles), the login (server, user, device, access token), the sync
cursor, known devices of other users, conversations, and a cache of decrypted messages.

How it is protected:

1. A 96-byte master secret is derived from the passphrase with argon2id and a random
   16-byte salt stored in the file (with the cost parameters). There is no default key.
2. The first 32 bytes are the vodozemac pickle key; the next 32 are the AES-256-GCM key
   of the sealer (``_seal``) that protects everything else secret (access token, message
   bodies, withheld reasons); the last 32 only open version-1 blobs of older stores.
3. A verifier (a known value sealed at creation) is checked at open, so a wrong
   passphrase fails there with ``WrongPassphrase``, never later with garbage.
4. Nothing depends on the file's path: a copy opens anywhere with the right passphrase.

What is not sealed: ids (conversation, device and session ids) and the seq range of each
message page -- metadata the server already sees. Who sent which message when is inside
the sealed pages (``cache``).

The file is opened in SQLite's exclusive locking mode: one process at a time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from argon2.low_level import Type, hash_secret_raw

from clearpost.client._seal import SealBroken, Sealer
from clearpost.client.errors import StoreError, WrongPassphrase

FORMAT = 3
"""Format 3 holds a device of the Matrix formats (user ids ``@name:server``, Matrix device
keys, ``m.room_key`` sessions keyed by room). Stores of formats 1 and 2 were written by
Clearpost before it spoke Matrix's formats: their device, its keys and its sessions use
the old ones, so they are refused with ``store_outdated`` and a way forward (log in again,
which makes a new device)."""
_VERIFIER = b"clearpost device store v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS olm_sessions (
    curve_key TEXT NOT NULL, session_id TEXT NOT NULL, pickle TEXT NOT NULL,
    created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL,
    PRIMARY KEY (curve_key, session_id));
CREATE TABLE IF NOT EXISTS outbound_groups (
    conversation_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, pickle TEXT NOT NULL,
    created_ms INTEGER NOT NULL, members TEXT NOT NULL, shared_with TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbound_groups (
    session_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, origin_user TEXT NOT NULL,
    origin_device TEXT NOT NULL, origin_curve TEXT NOT NULL, origin_ed25519 TEXT NOT NULL,
    forwarded_by TEXT, first_index INTEGER NOT NULL, members TEXT NOT NULL, pickle TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS message_pages (
    page INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, session_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, sealed BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS message_pages_by_conversation
    ON message_pages (conversation_id, last_seq);
CREATE INDEX IF NOT EXISTS message_pages_by_session ON message_pages (session_id);
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, curve25519 TEXT, ed25519 TEXT,
    display_name TEXT, status TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY, kind TEXT NOT NULL, created_by TEXT NOT NULL,
    members TEXT NOT NULL, joined_from_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    read_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS key_requests (
    session_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, requested_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS key_problems (
    id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, sender TEXT NOT NULL,
    sender_device TEXT NOT NULL, event_type TEXT NOT NULL, session_id TEXT,
    conversation_id TEXT, code TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS key_problems_by_session ON key_problems (session_id);
CREATE TABLE IF NOT EXISTS withheld (
    session_id TEXT PRIMARY KEY, sender TEXT NOT NULL, sender_device TEXT NOT NULL,
    code TEXT NOT NULL, sealed_reason BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """argon2id cost. The default is RFC 9106's second recommended option."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4


@dataclass(frozen=True, slots=True)
class Login:
    server: str
    user_id: str
    device_id: str
    access_token: str


def _derive(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    if not passphrase:
        raise StoreError(
            "a passphrase is required to open the device store", code="passphrase_required"
        )
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=kdf.time_cost,
        memory_cost=kdf.memory_kib,
        parallelism=kdf.parallelism,
        hash_len=96,
        type=Type.ID,
    )


class DeviceStore:
    """Use ``create`` or ``open``; close with ``close``. Writes are grouped into one
    transaction that ``commit`` ends (the crypto layer decides when)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, master: bytes) -> None:
        self.path = path
        self._conn = conn
        self.pickle_key = master[:32]
        self._sealer = Sealer(master[32:64], master[64:96])
        self._in_txn = False
        self._seqs: dict[str, tuple[int, int]] = {}  # conversation -> (last seq, read seq)

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, passphrase: str, kdf: KdfParams | None = None) -> DeviceStore:
        """Create a new, empty store. Refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"a device store already exists at {path}", code="store_exists")
        kdf = kdf or KdfParams()
        salt = os.urandom(16)
        master = _derive(passphrase, salt, kdf)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        store = cls(path, conn, master)
        with store.transaction():
            store._create_tables()
            params = {
                "salt": base64.b64encode(salt).decode(),
                "time_cost": kdf.time_cost,
                "memory_kib": kdf.memory_kib,
                "parallelism": kdf.parallelism,
            }
            store.set_meta("format", str(FORMAT).encode())
            store.set_meta("kdf", orjson.dumps(params))
            store.set_meta("verifier", store.seal(_VERIFIER, b"verifier"))
            store.set_meta("open", b"0")
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        return store

    @classmethod
    def open(cls, path: str | Path, passphrase: str) -> DeviceStore:
        """Open an existing store; ``WrongPassphrase`` if the passphrase does not fit."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no device store at {path}", code="store_missing")
        conn = _connect(path)
        try:
            rows = dict(
                conn.execute(
                    "SELECT name, value FROM meta WHERE name IN ('format', 'kdf', 'verifier')"
                )
            )
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc):
                raise StoreError(
                    f"the device store {path} is in use by another process", code="store_locked"
                ) from exc
            raise StoreError(
                f"{path} is not a Clearpost device store", code="store_corrupt"
            ) from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{path} is not a Clearpost device store", code="store_corrupt"
            ) from exc
        known = {str(f).encode(): f for f in range(1, FORMAT + 1)}
        if set(rows) != {"format", "kdf", "verifier"} or bytes(rows["format"]) not in known:
            conn.close()
            raise StoreError(
                f"{path} is not a Clearpost device store of format 1 to {FORMAT}",
                code="store_corrupt",
            )
        if known[bytes(rows["format"])] < FORMAT:
            conn.close()
            raise StoreError(
                f"the device store {path} was written by an older Clearpost (store format "
                f"{known[bytes(rows['format'])]}), before it spoke Matrix's encryption formats; "
                "its device cannot be used any more. Log in again to make a new device "
                "(clearpost account login <username> --store <a new file>), then remove "
                "the old device from the new one (clearpost account devices, "
                "clearpost account remove-device <id>) and delete this file. Messages this "
                "device decrypted are not carried over.",
                code="store_outdated",
            )
        params = orjson.loads(rows["kdf"])
        kdf = KdfParams(
            int(params["time_cost"]), int(params["memory_kib"]), int(params["parallelism"])
        )
        master = _derive(passphrase, base64.b64decode(params["salt"]), kdf)
        store = cls(path, conn, master)
        try:
            ok = store.unseal(bytes(rows["verifier"]), b"verifier") == _VERIFIER
        except WrongPassphrase:
            ok = False
        if not ok:
            conn.close()
            raise WrongPassphrase("wrong passphrase for this device store")
        return store

    def _create_tables(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._exec(statement)

    @property
    def crashed(self) -> bool:
        """True when the previous process using this store did not close it."""
        return self.get_meta("open") == b"1"

    def mark_open(self) -> None:
        self.set_meta("open", b"1")
        self.commit()

    def close(self) -> None:
        """Commit, record a clean shutdown, and release the file."""
        self.set_meta("open", b"0")
        self.commit()
        self._conn.close()

    # -- sealing --------------------------------------------------------------------------

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """Authenticated encryption; ``aad`` binds the value to its place in the store."""
        return self._sealer.seal(data, aad)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._sealer.unseal(blob, aad)
        except SealBroken as exc:
            raise WrongPassphrase("a sealed value in the device store does not open") from exc

    # -- transactions ---------------------------------------------------------------------

    def _exec(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if not self._in_txn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True
        return self._conn.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def commit(self) -> None:
        self._flush_seqs()
        if self._in_txn:
            self._conn.execute("COMMIT")
            self._in_txn = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            if self._in_txn:
                self._conn.execute("ROLLBACK")
                self._in_txn = False
            raise
        self.commit()

    def write(self, sql: str, params: Any = ()) -> None:
        """Run a write inside the current transaction (opening one if needed)."""
        self._exec(sql, params)

    def write_many(self, sql: str, rows: list[Any]) -> None:
        if rows:
            if not self._in_txn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._in_txn = True
            self._conn.executemany(sql, rows)

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def set_meta(self, name: str, value: bytes) -> None:
        self._exec(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def get_sealed(self, name: str) -> bytes | None:
        blob = self.get_meta(name)
        return None if blob is None else self.unseal(blob, b"meta:" + name.encode())

    def set_sealed(self, name: str, value: bytes) -> None:
        self.set_meta(name, self.seal(value, b"meta:" + name.encode()))

    @property
    def login(self) -> Login | None:
        raw = self.get_sealed("login")
        if raw is None:
            return None
        d = orjson.loads(raw)
        return Login(d["server"], d["user_id"], d["device_id"], d["access_token"])

    def set_login(self, login: Login) -> None:
        self.set_sealed(
            "login",
            orjson.dumps(
                {
                    "server": login.server,
                    "user_id": login.user_id,
                    "device_id": login.device_id,
                    "access_token": login.access_token,
                }
            ),
        )

    @property
    def cursor(self) -> str | None:
        raw = self.get_meta("cursor")
        return raw.decode() if raw else None

    def set_cursor(self, cursor: str) -> None:
        self.set_meta("cursor", cursor.encode())

    # -- conversations --------------------------------------------------------------------

    def save_conversation(self, conv: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO conversations (conversation_id, kind, created_by, members, "
            "joined_from_seq, last_seq) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET "
            "members = excluded.members, joined_from_seq = excluded.joined_from_seq, "
            "last_seq = max(conversations.last_seq, excluded.last_seq), kind = excluded.kind",
            (
                conv["conversation_id"],
                conv["kind"],
                conv["created_by"],
                orjson.dumps(conv["members"]).decode(),
                int(conv["joined_from_seq"]),
                int(conv["last_seq"]),
            ),
        )

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        self._flush_seqs()
        rows = self.query(
            "SELECT conversation_id, kind, created_by, members, joined_from_seq, last_seq, "
            "read_seq FROM conversations WHERE conversation_id = ?",
            (conversation_id,),
        )
        return _conv(rows[0]) if rows else None

    def conversations(self) -> list[dict[str, Any]]:
        self._flush_seqs()
        rows = self.query(
            "SELECT conversation_id, kind, created_by, members, joined_from_seq, last_seq, "
            "read_seq FROM conversations ORDER BY conversation_id"
        )
        return [_conv(r) for r in rows]

    def forget_conversation(self, conversation_id: str) -> None:
        self._exec("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))

    def mark_read(self, conversation_id: str, seq: int) -> None:
        """Everything up to ``seq`` was shown (written at the next commit or read)."""
        last, read = self._seqs.get(conversation_id, (0, 0))
        self._seqs[conversation_id] = (seq if seq > last else last, seq if seq > read else read)

    def bump_last_seq(self, conversation_id: str, seq: int) -> None:
        last, read = self._seqs.get(conversation_id, (0, 0))
        if seq > last:
            self._seqs[conversation_id] = (seq, read)

    def _flush_seqs(self) -> None:
        if self._seqs:
            rows = [(last, read, conv) for conv, (last, read) in self._seqs.items()]
            self._seqs = {}
            self.write_many(
                "UPDATE conversations SET last_seq = max(last_seq, ?), read_seq = max(read_seq, ?) "
                "WHERE conversation_id = ?",
                rows,
            )


def _conv(r: Any) -> dict[str, Any]:
    return {
        "conversation_id": r[0],
        "kind": r[1],
        "created_by": r[2],
        "members": orjson.loads(r[3]),
        "joined_from_seq": r[4],
        "last_seq": r[5],
        "read_seq": r[6],
    }


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 200")
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc):
            raise StoreError(
                f"the device store {path} is in use by another process", code="store_locked"
            ) from exc
        raise StoreError(
            f"cannot open the device store {path}: {exc}", code="store_corrupt"
        ) from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path} is not a Clearpost device store", code="store_corrupt") from exc
    return conn
