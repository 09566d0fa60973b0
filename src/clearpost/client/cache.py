"""The decrypted-message cache in the device store, kept in sealed pages.

Messages are buffered in memory and written at the next commit as *pages*: one row per
(conversation, Megolm session) per commit, holding every buffered message of that pair
in one sealed blob. A page is sealed once (AES-256-GCM with the store key, bound to its
page number, conversation and session), so the per-message cost is a list entry, not a
seal and a row of its own.

A message can be written again (a key arrives, or is withheld): the newer page wins.
Readers merge the pages they need in page order, then what is still buffered.

Each entry keeps what a message needs to be shown (sender, time, state, content or
problem) and, while it is not decrypted, its original event content (ciphertext), so
it can be decrypted when its key arrives. The (session, message index) of each decrypted
message is kept too: that is what replay protection checks against.

A page's plaintext is JSON: ``[[sender, device], [entry, ...]]``. A decrypted message from
the page's sender device -- nearly all of them, as a session has one sender -- is the
short entry ``[seq, sent_at, index, content]``; any other is the full entry ``[seq,
sender, device, sent_at, index, state, code, problem, content, envelope]``. Content is a
text message's body, or the JSON form of other content. Fewer bytes per message make the
commit cheaper: most of its cost is writing (and later checkpointing) the page.
"""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.client import content as content_mod
from clearpost.client.content import Text
from clearpost.client.errors import UnsupportedContent
from clearpost.client.model import Message, MessageState
from clearpost.client.store import DeviceStore

Key = tuple[str, int]
"""(conversation id, seq)."""

_Pending = tuple[
    str, str, str, int, "int | None", "str | None", "str | None", "str | None", Any, "str | None"
]
"""A buffered message: (session id, sender, device, sent_at, index, state or None when
decrypted, code, problem, content, envelope JSON or None). Plain values only, so the
garbage collector stops tracking the tuple at its first pass: a buffer of Message objects
was promoted through the collector's generations and made full collections more frequent."""

SEEN_SESSIONS = 256
"""Replay maps kept in memory: with sessions rotated every 100 messages, about 25,000
entries, instead of one for every message this process has seen."""

_NOT_DECRYPTED = (MessageState.WAITING_FOR_KEY.value, MessageState.WITHHELD.value)
_DECRYPTED = MessageState.DECRYPTED

# Entry fields inside a page, in order.
_SEQ, _SENDER, _DEVICE, _SENT_AT, _INDEX, _STATE, _CODE, _PROBLEM, _CONTENT, _ENVELOPE = range(10)


def _aad(page: int, conversation_id: str, session_id: str) -> bytes:
    return f"page:{page}:{conversation_id}:{session_id}".encode()


class MessageCache:
    def __init__(self, store: DeviceStore) -> None:
        self.store = store
        self._seen: dict[str, dict[int, Key]] = {}
        self._buffer: dict[Key, _Pending] = {}
        self._next_page = 0

    # -- writing --------------------------------------------------------------------------

    def put(
        self, m: Message, session_id: str, index: int | None, envelope: dict[str, Any] | str
    ) -> None:
        """Insert or update one message; ``index`` only for a decrypted one. It is written
        at the next commit; the replay map is updated at once."""
        key = (m.conversation_id, m.seq)
        content = None if m.content is None else _stored(m.content)
        if m.state is _DECRYPTED:  # its envelope is not kept: nothing needs it any more
            state = env = None
        else:
            state = m.state.value
            env = envelope if isinstance(envelope, str) else orjson.dumps(envelope).decode()
        self._buffer[key] = (session_id, m.sender, m.sender_device, m.sent_at, index, state,
                             m.code, m.problem, content, env)  # fmt: skip
        if index is not None:
            self._saw(session_id, index, key)

    def put_sent(
        self,
        conversation_id: str,
        seq: int,
        sender: str,
        device: str,
        sent_at: int,
        session_id: str,
        index: int,
        content: content_mod.Content,
    ) -> None:
        """``put`` for a message this device sent (decrypted, by definition), without
        building a ``Message`` nobody reads."""
        key = (conversation_id, seq)
        self._buffer[key] = (session_id, sender, device, sent_at, index, None, None, None,
                             _stored(content), None)  # fmt: skip
        self._saw(session_id, index, key)

    def _saw(self, session_id: str, index: int, key: Key) -> None:
        seen = self._seen.get(session_id)
        if seen is None:
            seen = self._seen_for(session_id)
        seen[index] = key

    def flush(self) -> None:
        """Write the buffer as pages (inside the store's current transaction)."""
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, {}
        pages: dict[tuple[str, str], tuple[tuple[str, str], list[int], list[Any]]] = {}
        page: tuple[tuple[str, str], list[int], list[Any]] = (("", ""), [], [])
        last = None
        for (conv, seq), p in pending.items():
            session_id, sender, device, sent_at, index, state, _, _, content, _ = p
            if (conv, session_id) != last:  # runs of one page are the rule
                last = (conv, session_id)
                page = pages.setdefault(last, ((sender, device), [], []))
            header, seqs, entries = page
            seqs.append(seq)
            if state is None and (sender, device) == header:
                entries.append((seq, sent_at, index, content))  # the short entry
            else:
                entries.append(_entry(seq, p))
        if not self._next_page:
            rows = self.store.query("SELECT coalesce(max(page), 0) FROM message_pages")
            self._next_page = int(rows[0][0]) + 1
        out = []
        for (conv, session_id), (header, seqs, entries) in pages.items():
            number, self._next_page = self._next_page, self._next_page + 1
            plain = orjson.dumps((header, entries))
            sealed = self.store.seal(plain, _aad(number, conv, session_id))
            out.append((number, conv, session_id, min(seqs), max(seqs), sealed))
        self.store.write_many(
            "INSERT INTO message_pages (page, conversation_id, session_id, first_seq, last_seq, "
            "sealed) VALUES (?, ?, ?, ?, ?, ?)",
            out,
        )

    # -- reading --------------------------------------------------------------------------

    def _merged(self, where: str, params: tuple[Any, ...]) -> dict[Key, tuple[str, list[Any]]]:
        """(conversation, seq) -> (session id, entry), newest first: the pages matching
        ``where`` in page order, then the buffer (the caller filters the buffer)."""
        out: dict[Key, tuple[str, list[Any]]] = {}
        rows = self.store.query(
            "SELECT page, conversation_id, session_id, sealed FROM message_pages "
            f"WHERE {where} ORDER BY page",
            params,
        )
        for page, conv, session_id, sealed in rows:
            plain = self.store.unseal(bytes(sealed), _aad(page, conv, session_id))
            (sender, device), entries = orjson.loads(plain)
            for e in entries:
                if len(e) == 4:  # the short entry: a decrypted message from the page's sender
                    seq, sent_at, index, content = e
                    e = [seq, sender, device, sent_at, index, _DECRYPTED, None, None, content, None]
                out[(conv, e[_SEQ])] = (session_id, e)
        for (conv, seq), p in self._buffer.items():
            out[(conv, seq)] = (p[0], _entry(seq, p))
        return out

    def _conversation(self, conversation_id: str, after: int) -> list[Message]:
        """Messages of one conversation after ``after``, in seq order."""
        merged = self._merged("conversation_id = ? AND last_seq > ?", (conversation_id, after))
        return [
            _message(conv, e)
            for (conv, seq), (_, e) in sorted(merged.items(), key=lambda kv: kv[0][1])
            if conv == conversation_id and seq > after
        ]

    def _seen_for(self, session_id: str) -> dict[int, Key]:
        seen = self._seen.get(session_id)
        if seen is None:
            merged = self._merged("session_id = ?", (session_id,))
            seen = self._remember(session_id, {
                e[_INDEX]: key
                for key, (s, e) in merged.items()
                if s == session_id and e[_INDEX] is not None
            })  # fmt: skip
        return seen

    def _remember(self, session_id: str, seen: dict[int, Key]) -> dict[int, Key]:
        """Keep the replay map of at most ``SEEN_SESSIONS`` sessions in memory; a map let go
        is read again from the pages (and the buffer) when its session is next used."""
        if len(self._seen) >= SEEN_SESSIONS:
            del self._seen[next(iter(self._seen))]  # the one loaded longest ago
        self._seen[session_id] = seen
        return seen

    def new_session(self, session_id: str) -> None:
        """``session_id`` was just created or first imported: no message has used it yet."""
        if session_id not in self._seen:
            self._remember(session_id, {})

    def seen(self, session_id: str, index: int) -> Key | None:
        """Which message (conversation, seq) already used this session's ``index``."""
        return self._seen_for(session_id).get(index)

    def get(self, conversation_id: str, seq: int) -> Message | None:
        pending = self._buffer.get((conversation_id, seq))
        if pending is not None:
            return _message(conversation_id, _entry(seq, pending))
        merged = self._merged(
            "conversation_id = ? AND last_seq >= ? AND first_seq <= ?",
            (conversation_id, seq, seq),
        )
        found = merged.get((conversation_id, seq))
        return None if found is None else _message(conversation_id, found[1])

    def history(self, conversation_id: str, after: int = 0, limit: int = 1000) -> list[Message]:
        return self._conversation(conversation_id, after)[:limit]

    def waiting(self, session_id: str) -> list[tuple[dict[str, Any], Message]]:
        """Messages of ``session_id`` not decrypted yet (waiting or withheld), in wire form."""
        candidates = [
            key
            for key, (s, e) in self._merged("session_id = ?", (session_id,)).items()
            if s == session_id and e[_STATE] in _NOT_DECRYPTED
        ]
        out = []
        for conv, seq in candidates:
            # A newer page of another session may hold the same message: ask for the newest.
            merged = self._merged(
                "conversation_id = ? AND last_seq >= ? AND first_seq <= ?", (conv, seq, seq)
            )
            s, e = merged[(conv, seq)]
            if s != session_id or e[_STATE] not in _NOT_DECRYPTED:
                continue
            m = _message(conv, e)
            raw = {
                "conversation_id": conv,
                "seq": seq,
                "sender": m.sender,
                "sender_device": m.sender_device,
                "origin_server_ts": m.sent_at,
                "content": orjson.loads(e[_ENVELOPE]),
            }
            out.append((raw, m))
        return out

    def count_from(self, conversation_id: str, after: int, sender: str) -> int:
        """Cached messages after ``after`` sent by ``sender``."""
        return sum(1 for m in self._conversation(conversation_id, after) if m.sender == sender)


def _entry(seq: int, p: _Pending) -> list[Any]:
    """The full entry of a buffered message."""
    _, sender, device, sent_at, index, state, code, problem, content, env = p
    return [seq, sender, device, sent_at, index, state or _DECRYPTED.value, code, problem,
            content, env]  # fmt: skip


def _stored(content: content_mod.Content) -> Any:
    """How content is kept in an entry: a text message's body alone, other content as its
    JSON form with its type."""
    return content.body if type(content) is Text else content_mod.to_json(content)


def _content(stored: Any) -> content_mod.Content | None:
    """The content kept as ``stored`` (None when there is none, or of a type this version
    does not know)."""
    if isinstance(stored, str):
        return Text(stored)
    if stored is None:
        return None
    try:
        return content_mod.from_json(stored)
    except UnsupportedContent:
        return None


def _message(conversation_id: str, e: list[Any]) -> Message:
    return Message(
        conversation_id,
        e[_SEQ],
        e[_SENDER],
        e[_DEVICE],
        e[_SENT_AT],
        MessageState(e[_STATE]),
        _content(e[_CONTENT]),
        e[_PROBLEM],
        e[_CODE],
    )
