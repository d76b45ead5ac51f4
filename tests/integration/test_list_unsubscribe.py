"""One-click unsubscribe (RFC 8058): the headers a provider receives, and their link.

The link is read from what SendGrid (the simulator) received, then used as a
mailbox provider would: a GET shows a page and changes nothing, a POST of
`List-Unsubscribe=One-Click` suppresses the recipient for that sender.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from postline.settings import Settings
from postline.simulator import RunningSimulator
from tests.support.harness import running_api, running_worker, settings_for, wait_for

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
EMAIL = {
    "from": "Bookings <Bookings@example.com>",
    "to": "Ana <ana@example.org>",
    "type": "email",
    "subject": "Your weekly offers",
    "body": "Offers",
    "list_unsubscribe": True,
}
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"content-type": "application/x-www-form-urlencoded"}}  # fmt: skip


@pytest.fixture
async def served(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    # The API needs a public URL to accept the field; the worker's links must
    # point at the API under test, whose address is known once it serves.
    settings = settings_for(
        database_url, redis_url, sim.base_url,
        callback_signing_secret=SECRET, public_base_url="http://api.invalid",
    )  # fmt: skip
    # Given with a trailing slash, as an operator may write it.
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        yield api, settings.model_copy(update={"public_base_url": base + "/"})


async def sent_mail(api: httpx.AsyncClient, sim: RunningSimulator, settings: Settings) -> Any:
    """Sends EMAIL through a worker; returns the JSON SendGrid received."""
    message_id = (await api.post("/api/v1/messages/send", json=EMAIL)).json()["id"]

    async def received() -> Any:
        async with httpx.AsyncClient(base_url=sim.base_url) as control:
            calls = (await control.get("/_sim/requests", params={"to": "ana@example.org"})).json()
        found = [
            c
            for c in calls["requests"]
            if c["json"]["personalizations"][0]["custom_args"]["postline_id"] == message_id
        ]
        return found[0]["json"] if found else None

    async with running_worker(settings):
        return await wait_for(received, timeout=15, what="the email to reach SendGrid")


async def test_the_link_suppresses_the_recipient_for_that_sender_on_post_only(
    served: tuple[httpx.AsyncClient, Settings], sim: RunningSimulator, pool: asyncpg.Pool
) -> None:
    api, settings = served
    mail = await sent_mail(api, sim, settings)
    message_id = mail["personalizations"][0]["custom_args"]["postline_id"]
    headers = mail["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The public URL (no doubled slash), the path, and a token of 32 bytes in
    # base64url without padding: the message's id, then its tag. That the tag
    # is genuine shows below: the server takes the link and refuses a changed one.
    link = re.fullmatch(
        rf"<({re.escape(str(api.base_url))}/api/v1/unsubscribe/([A-Za-z0-9_-]{{43}}))>",
        headers["List-Unsubscribe"],
    )
    assert link is not None, headers["List-Unsubscribe"]
    url, token = link[1], link[2]
    named = uuid.UUID(bytes=base64.urlsafe_b64decode(token + "=")[:16])
    assert str(named) == message_id, f"the link names {named}, the email is {message_id}"

    async with httpx.AsyncClient() as mailbox:
        page = await mailbox.get(url)
        assert page.status_code == 200 and "ana@example.org" in page.text
        assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0  # GET changes nothing
        for _ in range(2):  # idempotent: a provider may post twice
            done = await mailbox.post(url, **ONE_CLICK)
            assert done.status_code == 200
        forged = await mailbox.post(
            url[:-2] + ("AA" if not url.endswith("AA") else "BB"), **ONE_CLICK
        )
        assert forged.status_code == 404

    rows = await pool.fetch("SELECT channel, recipient, sender, reason, source FROM suppressions")
    assert [tuple(r) for r in rows] == [
        ("email", "ana@example.org", "bookings@example.com", "unsubscribe", "list_unsubscribe")
    ]
    # The next email from that sender is suppressed; another sender's goes out.
    again = (await api.post("/api/v1/messages/send", json=EMAIL)).json()["id"]
    other = {**EMAIL, "from": "news@example.com"}
    elsewhere = (await api.post("/api/v1/messages/send", json=other)).json()["id"]
    async with running_worker(settings):

        async def both_done() -> list[dict[str, Any]] | None:
            got = [(await api.get(f"/api/v1/messages/{i}")).json() for i in (again, elsewhere)]
            return got if all(m["status"] in ("sent", "failed") for m in got) else None

        suppressed, sent = await wait_for(both_done, timeout=15, what="both emails to settle")
    assert suppressed["error"]["code"] == "suppressed"
    assert sent["status"] == "sent"


async def test_an_email_without_the_field_carries_no_unsubscribe_headers(
    served: tuple[httpx.AsyncClient, Settings], sim: RunningSimulator
) -> None:
    api, settings = served
    EMAIL_PLAIN = {**EMAIL, "list_unsubscribe": False}
    message_id = (await api.post("/api/v1/messages/send", json=EMAIL_PLAIN)).json()["id"]
    assert (await api.get(f"/api/v1/messages/{message_id}")).json()["list_unsubscribe"] is False

    async def received() -> Any:
        async with httpx.AsyncClient(base_url=sim.base_url) as control:
            calls = (await control.get("/_sim/requests", params={"to": "ana@example.org"})).json()
        return calls["requests"][0]["json"] if calls["requests"] else None

    async with running_worker(settings):
        mail = await wait_for(received, timeout=15, what="the email to reach SendGrid")
    assert "headers" not in mail


async def test_the_field_is_refused_off_email_and_on_a_server_without_a_public_url(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, callback_signing_secret=SECRET)
    sms = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "x"}
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        off_email = await api.post("/api/v1/messages/send", json={**sms, "list_unsubscribe": True})
        assert off_email.status_code == 422
        assert off_email.json()["error"]["details"][0]["loc"] == ["list_unsubscribe"]
        no_url = await api.post("/api/v1/messages/send", json=EMAIL)
        assert no_url.status_code == 422
        assert "PUBLIC_BASE_URL" in no_url.json()["error"]["message"]
        batch = await api.post("/api/v1/messages/batch", json={"messages": [EMAIL]})
        assert batch.json()["results"][0]["error"]["details"][0]["loc"] == ["list_unsubscribe"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
