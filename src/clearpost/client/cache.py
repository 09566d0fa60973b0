"""The decrypted-message cache in the device store.

Bodies and problem texts are sealed with the store key; the original envelope (already
ciphertext) is kept so a message waiting for its key can be decrypted when it arrives.
The (session, message index) of each decrypted message is kept too: that is what replay
protection checks against.
"""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.client import content as content_mod
from clearpost.client.errors import UnsupportedContent
from clearpost.client.model import Message, MessageState
from clearpost.client.store import DeviceStore

_COLUMNS = "conversation_id, seq, sender, sender_device, sent_at, state, code, sealed"


def _aad(conversation_id: str, seq: int) -> bytes:
    return f"msg:{conversation_id}:{seq}".encode()


class MessageCache:
    def __init__(self, store: DeviceStore) -> None:
        self.store = store
        self._seen: dict[str, dict[int, tuple[str, int]]] = {}
        self._buffer: dict[tuple[str, int], tuple[Any, ...]] = {}

    def put(
        self, m: Message, session_id: str, index: int | None, envelope: dict[str, Any] | str
    ) -> None:
        """Insert or update one message; ``index`` only for a decrypted one. Rows are written
        in batches (at the next commit or read); the replay map is updated at once. The
        envelope is kept only while the message is not decrypted (to retry it later)."""
        body: dict[str, Any] = {"problem": m.problem}
        if m.content is not None:
            body["content"] = content_mod.to_json(m.content)
        sealed = self.store.seal(orjson.dumps(body), _aad(m.conversation_id, m.seq))
        if m.state is MessageState.DECRYPTED:
            env = ""
        else:
            env = envelope if isinstance(envelope, str) else orjson.dumps(envelope).decode()
        self._buffer[(m.conversation_id, m.seq)] = (
            m.conversation_id,
            m.seq,
            m.sender,
            m.sender_device,
            m.sent_at,
            session_id,
            index,
            m.state.value,
            m.code,
            sealed,
            env,
        )
        if index is not None:
            self._seen_for(session_id)[index] = (m.conversation_id, m.seq)

    def flush(self) -> None:
        """Write buffered rows (inside the store's current transaction)."""
        if self._buffer:
            rows, self._buffer = list(self._buffer.values()), {}
            self.store.write_many(
                "INSERT INTO messages (conversation_id, seq, sender, sender_device, sent_at, "
                "session_id, message_index, state, code, sealed, envelope) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (conversation_id, seq) DO UPDATE SET state = excluded.state, "
                "code = excluded.code, sealed = excluded.sealed, "
                "message_index = excluded.message_index, envelope = excluded.envelope",
                rows,
            )

    def _seen_for(self, session_id: str) -> dict[int, tuple[str, int]]:
        seen = self._seen.get(session_id)
        if seen is None:
            self.flush()
            rows = self.store.query(
                "SELECT message_index, conversation_id, seq FROM messages "
                "WHERE session_id = ? AND message_index IS NOT NULL",
                (session_id,),
            )
            seen = self._seen[session_id] = {r[0]: (r[1], r[2]) for r in rows}
        return seen

    def seen(self, session_id: str, index: int) -> tuple[str, int] | None:
        """Which message (conversation, seq) already used this session's ``index``."""
        return self._seen_for(session_id).get(index)

    def _row(self, r: Any) -> Message:
        body = orjson.loads(self.store.unseal(bytes(r[7]), _aad(r[0], r[1])))
        content = None
        if "content" in body:
            try:
                content = content_mod.from_json(body["content"])
            except UnsupportedContent:
                content = None
        return Message(
            r[0], r[1], r[2], r[3], r[4], MessageState(r[5]), content, body.get("problem"), r[6]
        )

    def get(self, conversation_id: str, seq: int) -> Message | None:
        self.flush()
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?",
            (conversation_id, seq),
        )
        return self._row(rows[0]) if rows else None

    def history(self, conversation_id: str, after: int = 0, limit: int = 1000) -> list[Message]:
        self.flush()
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (conversation_id, after, limit),
        )
        return [self._row(r) for r in rows]

    def waiting(self, session_id: str) -> list[tuple[dict[str, Any], Message]]:
        """Messages of ``session_id`` not decrypted yet (waiting or withheld), in wire form."""
        self.flush()
        rows = self.store.query(
            f"SELECT {_COLUMNS}, envelope FROM messages WHERE session_id = ? AND state IN (?, ?)",
            (session_id, MessageState.WAITING_FOR_KEY.value, MessageState.WITHHELD.value),
        )
        out = []
        for r in rows:
            m = self._row(r)
            raw = {
                "conversation_id": m.conversation_id,
                "seq": m.seq,
                "sender": m.sender,
                "sender_device": m.sender_device,
                "sent_at": m.sent_at,
                "envelope": orjson.loads(r[8]),
            }
            out.append((raw, m))
        return out

    def count_from(self, conversation_id: str, after: int, sender: str) -> int:
        """Cached messages after ``after`` sent by ``sender``."""
        self.flush()
        rows = self.store.query(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND seq > ? AND sender = ?",
            (conversation_id, after, sender),
        )
        return int(rows[0][0])
