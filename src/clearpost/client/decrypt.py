"""Decrypting one conversation message, with every check it must pass.

This is the receive path's dangerous part: it decides what a user sees as someone's
words. It touches no network and no cache rows; ``Crypto.receive`` stores the result.
"""

from __future__ import annotations

import time
from typing import Any

import vodozemac

from clearpost.client import content as content_mod
from clearpost.client.cache import MessageCache
from clearpost.client.errors import CryptoError
from clearpost.client.formats import MEGOLM_ALGORITHM, MegolmContent
from clearpost.client.megolm import GroupSessions
from clearpost.client.model import Message, MessageState, Stats


class _Reject(Exception):
    def __init__(self, state: MessageState, problem: str, code: str) -> None:
        self.state, self.problem, self.code = state, problem, code


def _waiting(sender: str, device: str) -> _Reject:
    return _Reject(
        MessageState.WAITING_FOR_KEY,
        f"waiting for the key from {sender}'s device {device}",
        "waiting_for_key",
    )


def decrypt_message(
    raw: dict[str, Any],
    conv: str,
    seq: int,
    room_id: str,
    groups: GroupSessions,
    cache: MessageCache,
    stats: Stats,
) -> tuple[Message, str, int | None]:
    """(message, session id, message index if decrypted) for ``raw``, the room event
    ``seq`` of conversation ``conv`` (Matrix room ``room_id``).

    Steps:
    1. The content is m.megolm.v1.aes-sha2 with a ciphertext and a session id; its
       deprecated ``device_id``, when present, is the device the server says sent it.
    2. We hold an inbound session with that id -- else WAITING_FOR_KEY.
    3. The session belongs to this conversation and was shared by the sender's device:
       same user, same device id (and the same Curve25519 key as a ``sender_key`` that
       is present) -- else FAILED (untrusted_sender).
    4. The ciphertext authenticates (Ed25519 signature and MAC) -- else FAILED
       (tampered); an index before the session's first known one is WAITING_FOR_KEY.
    5. The (session, index) pair was not used by another message -- else FAILED (replay).
    6. The plaintext is an ``m.room.message`` of this room with content we know.
    """
    sender, device = str(raw["sender"]), str(raw["sender_device"])
    session_id = ""
    try:
        # 1.
        c = raw.get("content")
        if (
            type(c) is dict
            and len(c) == 3
            and c.get("algorithm") == MEGOLM_ALGORITHM
            and type(c.get("ciphertext")) is str
            and type(c.get("session_id")) is str
        ):  # the common case, as matrix-sdk-crypto and this SDK send it
            ciphertext, session_id = c["ciphertext"], c["session_id"]
            sender_key = device_id = None
        else:
            try:
                parsed = MegolmContent.parse(c)
            except CryptoError as exc:
                raise _Reject(MessageState.FAILED, exc.message, "invalid_envelope") from None
            ciphertext, session_id = parsed.ciphertext, parsed.session_id
            sender_key, device_id = parsed.sender_key, parsed.device_id
        if device_id is not None and device_id != device:
            raise _Reject(
                MessageState.FAILED,
                "the event names a different device than the one that sent it",
                "untrusted_sender",
            )
        started = time.perf_counter()
        try:
            megolm = vodozemac.MegolmMessage.from_base64(ciphertext)
        except (vodozemac.DecodeException, ValueError):
            raise _Reject(
                MessageState.FAILED, "the ciphertext does not parse", "tampered"
            ) from None
        # 2.
        inbound = groups.inbound(session_id)
        if inbound is None:
            raise _waiting(sender, device)
        # 3.
        o = inbound.origin
        if (
            inbound.conversation_id != conv
            or o.user_id != sender
            or o.device_id != device
            or (sender_key is not None and o.curve25519 != sender_key)
        ):
            raise _Reject(
                MessageState.FAILED,
                "the sender of this message is not the device "
                "that shared its session key; it was rejected",
                "untrusted_sender",
            )
        # 4.
        try:
            decrypted = inbound.session.decrypt(megolm)
        except vodozemac.MegolmDecryptionException:
            if megolm.message_index() < inbound.first_index:
                raise _waiting(sender, device) from None
            raise _Reject(
                MessageState.FAILED,
                "this message was tampered with or corrupted: its signature or MAC does not verify",
                "tampered",
            ) from None
        finally:
            stats.crypto += time.perf_counter() - started
        stats.messages_decrypted += 1
        index = decrypted.message_index
        # 5.
        earlier = cache.seen(session_id, index)
        if earlier is not None and earlier != (conv, seq):
            raise _Reject(
                MessageState.FAILED,
                "replayed message: its key index was already "
                f"used by message {earlier[1]} of {earlier[0]}",
                "replay",
            )
        # 6.
        try:
            content = content_mod.decode(room_id, decrypted.plaintext)
        except CryptoError as exc:
            raise _Reject(MessageState.FAILED, exc.message, exc.code) from None
    except _Reject as no:
        msg = Message(
            conv,
            seq,
            sender,
            device,
            int(raw.get("origin_server_ts", 0)),
            no.state,
            None,
            no.problem,
            no.code,
        )
        return msg, session_id, None
    msg = Message(
        conv,
        seq,
        sender,
        device,
        int(raw.get("origin_server_ts", 0)),
        MessageState.DECRYPTED,
        content,
    )
    return msg, session_id, index
