"""The readable agreement page the consent page (and the web app's connected apps) link to."""

from __future__ import annotations

import re

from tests.support.partner import AGREEMENT, PASSWORD, World, approve, oauth_client


async def test_the_agreement_reads_in_plain_words_with_its_log_entry(world: World) -> None:
    services = world.client._transport.app.state.services  # type: ignore[attr-defined]
    page = await world.client.get("/agreements/streamco")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "<h1>StreamCo's agreement with Clearpost</h1>" in text
    # the scopes in the catalogue's plain words, split by who grants them
    user = re.search(r'<ul class="scopes" id="user-scopes">(.*?)</ul>', text, re.S)
    own = re.search(r'<ul class="scopes" id="own-scopes">(.*?)</ul>', text, re.S)
    assert user and "profile:basic" in user.group(1) and "share:intent" in user.group(1)
    assert "Suggest something for you to share with friends" in user.group(1)
    assert own and "reports:read" in own.group(1) and "share:intent" not in own.group(1)
    assert "Let viewers tell friends what they are watching" in text
    assert "Share intents are deleted after 24 hours" in text
    assert "<li>streamco.example</li>" in text
    assert "Every 14 days StreamCo may read one report" in text
    # the version's log entry, and the exact JSON for whoever wants it
    (version,) = (await world.client.get("/v1/agreements/streamco")).json()["versions"]
    index = version["log_index"]
    assert f'href="/v1/log/entries?start={index}&amp;end={index + 1}"' in text
    assert 'href="/v1/agreements/streamco"' in text
    # a new version is listed above the old one, and the page shows the new one
    await services.partners.update(
        AGREEMENT.replace(
            'purposes = ["Let viewers tell friends what they are watching"]',
            'purposes = ["Let viewers tell friends what they are watching", '
            '"Let friends know about premieres"]',
        )
    )
    text = (await world.client.get("/agreements/streamco")).text
    assert "Version 2, published" in text and "Let friends know about premieres" in text
    assert text.index("<li>Version 2,") < text.index("<li>Version 1,")


async def test_an_unknown_partner_is_a_plain_404_page(world: World) -> None:
    page = await world.client.get("/agreements/nobody")
    assert page.status_code == 404
    assert "No such app" in page.text and page.headers["content-type"].startswith("text/html")
    # markup in the path is never echoed
    page = await world.client.get("/agreements/%3Cscript%3E")
    assert page.status_code == 404 and "<script>" not in page.text


async def test_the_consent_page_links_to_the_readable_agreement(world: World) -> None:
    async with oauth_client(world) as oauth:
        url, _ = oauth.create_authorization_url(
            "http://test/oauth/authorize", code_verifier="v" * 48
        )
        done = await approve(world.client, url, "alice", PASSWORD, decision="deny")
        assert done.status_code == 302
        page = await world.client.get(url)
        assert 'id="agreement-link" href="/agreements/streamco"' in page.text
