"""Share intents through the SDK, in-process: they reach only Alice's devices, travel as
encrypted cards, and the server learns the number of recipients and nothing else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from clearpost.client import (
    ClientError,
    MessageEvent,
    ShareCard,
    ShareError,
    ShareIntentEvent,
)
from clearpost.core.clock import FakeClock
from tests.unit.client.partners import WATCHING, partnered

DAY_MS = 24 * 3600 * 1000


def cards(events: list[object]) -> list[ShareCard]:
    return [
        e.message.content
        for e in events
        if isinstance(e, MessageEvent) and isinstance(e.message.content, ShareCard)
    ]


async def test_an_intent_reaches_only_alice_then_goes_encrypted_to_bob_and_carol(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        created = await w.suggest()
        events = await w.alice.sync()
        (event,) = [e for e in events if isinstance(e, ShareIntentEvent)]
        intent = event.intent
        assert intent.intent_id == created["intent_id"]
        assert (intent.title, intent.url) == (WATCHING["title"], WATCHING["url"])
        assert intent.partner == "streamco" and intent.partner_name == "StreamCo"
        assert intent.link.startswith("http://127.0.0.1:8448/s/")
        assert intent.log_index == created["log_index"]
        assert DAY_MS - 60_000 < intent.expires_in_ms(w.alice.clock.now_ms()) <= DAY_MS
        for other in (w.bob, w.carol):  # nobody else hears of it
            assert not [e for e in await other.sync() if isinstance(e, ShareIntentEvent)]

        (listed,) = await w.alice.share_intents()
        assert listed == intent  # the list names the partner the same way as the event
        shared = await w.alice.share(intent.intent_id[:10], to=["@bob", "@carol", "@bob"])
        assert shared.recipients == 2 and len(shared.sent) == 2

        for other in (w.bob, w.carol):
            (card,) = cards(await other.sync())
            assert card == ShareCard(
                WATCHING["title"], intent.link, WATCHING["description"], "StreamCo"
            )
            assert card.summary().endswith("(via StreamCo)")

        stored = await w.services.shares.store.intent(intent.intent_id)
        assert stored.recipients == 2 and stored.completed_at is not None
        assert await w.alice.share_intents() == []
        with pytest.raises(ShareError) as gone:
            await w.alice.share(intent.intent_id, to=["@bob"])
        assert gone.value.code == "intent_not_found"

        # Bob follows the link: one click counted, a redirect to StreamCo's page
        path = httpx.URL(intent.link).path
        r = await w.http.get(path)
        assert r.status_code == 302 and r.headers["location"] == WATCHING["url"]
        token = path.rsplit("/", 1)[1]
        assert await w.services.shares.store.click_count(token) == 1


async def test_a_conversation_counts_its_other_members_and_a_retry_sends_no_second_card(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        group = await w.alice.new_group(["@bob", "@carol"])
        await w.suggest()
        (intent,) = await w.alice.share_intents()

        def lose_answer(body: bytes) -> bytes:
            raise httpx.ReadError("connection reset while reading the answer")

        w.tamper.rewrites[f"/v1/me/share-intents/{intent.intent_id}/complete"] = lose_answer
        with pytest.raises(ClientError) as failed:
            await w.alice.share(intent, conversations=[group], to=["@bob"])
        assert failed.value.code == "network_error"
        del w.tamper.rewrites[f"/v1/me/share-intents/{intent.intent_id}/complete"]
        # the server did complete it; the intent is gone, nothing is sent again
        assert await w.alice.share_intents() == []
        stored = await w.services.shares.store.intent(intent.intent_id)
        assert stored.recipients == 2  # the group's Bob and Carol; Bob counted once

        assert len(cards(await w.bob.sync())) == 2  # the group and his direct conversation
        assert len(cards(await w.carol.sync())) == 1


async def test_a_failed_send_can_be_repeated_without_a_second_card(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await w.suggest()
        (intent,) = await w.alice.share_intents()
        carol = await w.alice.direct("@carol")
        # Bob's card goes out, Carol's cannot: the intent stays pending
        w.tamper.unreachable.add(f"/v1/conversations/{carol}/messages/")
        w.alice.transport.attempts = 1
        with pytest.raises(ClientError) as failed:
            await w.alice.share(intent, to=["@bob", "@carol"])
        assert failed.value.code == "network_error"
        w.tamper.unreachable.clear()
        assert [i.intent_id for i in await w.alice.share_intents()] == [intent.intent_id]

        shared = await w.alice.share(intent, to=["@bob", "@carol"])
        assert shared.recipients == 2
        assert len(cards(await w.bob.sync())) == 1  # the same transaction id: stored once
        assert len(cards(await w.carol.sync())) == 1


async def test_expired_intents_no_recipients_and_yourself_are_refused(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await w.suggest()
        (intent,) = await w.alice.share_intents()
        with pytest.raises(ShareError) as none:
            await w.alice.share(intent)
        assert none.value.code == "no_recipients"
        with pytest.raises(ShareError) as me:
            await w.alice.share(intent, to=["@alice"])
        assert me.value.code == "invalid_recipient"
        with pytest.raises(ClientError) as unknown:
            await w.alice.share(intent, conversations=["c_" + "x" * 22])
        assert unknown.value.code == "conversation_not_found"

        later = FakeClock(intent.expires_at + 1)
        w.alice.clock = later
        with pytest.raises(ShareError) as expired:
            await w.alice.share(intent, to=["@bob"])
        assert expired.value.code == "intent_expired" and "24 hours" in expired.value.message
        assert not cards(await w.bob.sync())  # nothing was sent


async def test_apps_and_revocation(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await w.suggest()
        (app,) = await w.alice.apps()
        assert app.partner == "streamco" and app.partner_name == "StreamCo" and app.connected
        assert set(app.scopes) == {"profile:basic", "share:intent"}
        assert app.last_access is not None and app.grant_log_index is not None
        assert await w.bob.apps() == []

        indexes = await w.alice.revoke_app("streamco")
        assert len(indexes) == 1
        (app,) = await w.alice.apps()
        assert not app.connected and app.revoke_log_index == indexes[0]
        r = await w.streamco.post("http://test/v1/partner/share-intents", json=WATCHING)
        assert r.status_code == 401  # its tokens stopped working at once
        with pytest.raises(ClientError) as again:
            await w.alice.revoke_app("streamco")
        assert again.value.code == "app_not_connected"
