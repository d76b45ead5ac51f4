"""Inbound messages over real HTTP: Twilio's signed webhook (played by the simulator) in,
stored once, keywords applied, HELP answered, `message.received` delivered, listed."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook
from twilio.request_validator import RequestValidator

from postline.providers.signatures import twilio_signature
from postline.simulator.app import RunningSimulator
from tests.support.harness import (
    SIM_TOKEN,
    message_reaches,
    running_worker,
    settings_for,
    wait_for,
)
from tests.support.servers_http import serving_aiohttp

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
INBOUND_PATH = "/api/v1/webhooks/twilio/inbound"
HELP = "Acme & Co: reply STOP to opt out <or> call +15550100"
US, OURS, OTHER = "+15559876543", "+15551234567", "+15557654321"


class Receiver:
    """A client endpoint that records what reaches it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[tuple[dict[str, str], bytes]] = []


@contextlib.asynccontextmanager
async def serve(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    async with serving_aiohttp(app) as base:
        yield f"{base}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        box[0].calls.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async with serve(hook) as url:
        box.append(Receiver(url))
        yield box[0]


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    sim: Any,
    pool: asyncpg.Pool,
    redis: Any,
    receiver: Receiver,
) -> Any:
    return settings_for(
        database_url, redis_url, sim.base_url, callback_signing_secret=SECRET,
        callback_retry_base_seconds=0.2, inbound_help_reply=HELP,
        inbound_callback_url=receiver.url,
    )  # fmt: skip


@pytest.fixture
async def control(
    api: httpx.AsyncClient, sim: RunningSimulator
) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's control plane, its inbound webhook pointed at the API under test."""
    sim.config.twilio_inbound_webhook_url = str(api.base_url).rstrip("/") + INBOUND_PATH
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=15) as client:
        yield client


async def play(control: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await control.post("/_sim/inbound", json={"from": US, "to": OURS, **body})
    assert answer.status_code == 200, answer.text
    played: dict[str, Any] = answer.json()
    return played


async def rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM inbound_messages"))


async def post_form(
    api: httpx.AsyncClient, form: dict[str, str] | bytes, *, token: str | None = SIM_TOKEN
) -> httpx.Response:
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        url = str(api.base_url).rstrip("/") + INBOUND_PATH
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        headers["X-Twilio-Signature"] = twilio_signature(token, url, pairs)
    return await api.post(INBOUND_PATH, content=body, headers=headers)


def form(**extra: str) -> dict[str, str]:
    return {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "1" * 32,
            "From": US, "To": OURS, "Body": "Hello", "NumMedia": "0", **extra}  # fmt: skip


async def test_the_simulators_webhook_verifies_with_twilios_own_validator(
    sim: RunningSimulator,
) -> None:
    seen: list[tuple[str, dict[str, str], str]] = []

    async def hook(request: web.Request) -> web.Response:
        fields = {k: str(v) for k, v in (await request.post()).items()}
        seen.append((str(request.url), fields, request.headers["X-Twilio-Signature"]))
        return web.Response(text="<Response/>", content_type="text/xml")

    async with serve(hook) as url, httpx.AsyncClient(base_url=sim.base_url) as client:
        for body in ({"body": "Hi"}, {"channel": "whatsapp", "body": "Hi there",
                     "media_urls": ["https://media.example/a.png"]}):  # fmt: skip
            answer = await client.post(
                "/_sim/inbound", json={"from": US, "to": OURS, "url": url, **body}
            )
            assert answer.json()["status"] == 200
    validator = RequestValidator(SIM_TOKEN)
    for url, fields, signature in seen:
        assert validator.validate(url, fields, signature)
        assert not validator.validate(url, {**fields, "Body": "changed"}, signature)
    sms, whatsapp = (fields for _, fields, _ in seen)
    assert (sms["From"], sms["To"], sms["NumMedia"]) == (US, OURS, "0")
    assert sms["MessageSid"].startswith("SM") and len(sms["MessageSid"]) == 34
    assert (whatsapp["From"], whatsapp["To"]) == (f"whatsapp:{US}", f"whatsapp:{OURS}")
    assert (whatsapp["MediaUrl0"], whatsapp["MediaContentType0"]) == (
        "https://media.example/a.png", "image/png")  # fmt: skip


async def test_an_inbound_sms_is_stored_and_listed_with_an_empty_twiml_answer(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    played = await play(control, body="Running late, see you at 6")
    assert (played["status"], played["reply"]) == (200, None)
    assert played["answer"].endswith("<Response/>")
    [item] = (await api.get("/api/v1/inbound")).json()["items"]
    assert item["provider_message_id"] == played["message_sid"]
    assert (item["channel"], item["from"], item["to"]) == ("sms", US, OURS)
    assert (item["body"], item["media"], item["keyword"], item["action"]) == (
        "Running late, see you at 6", [], None, "none")  # fmt: skip
    assert item["received_at"].endswith("Z")


async def test_unsigned_and_wrongly_signed_webhooks_are_refused_and_store_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    for token in (None, "not-the-token"):
        answer = await post_form(api, form(Body="STOP"), token=token)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "forbidden"
    tampered = await api.post(
        INBOUND_PATH, content=urlencode(form(Body="STOP")),
        headers={"X-Twilio-Signature": twilio_signature(SIM_TOKEN, "http://x/", form()),
                 "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert tampered.status_code == 403
    assert await rows(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0


@pytest.mark.parametrize(
    "bad",
    [{"MessageSid": ""}, {"From": "not-a-number"}, {"To": "+1"}, {"Body": "nul\x00"},
     {"NumMedia": "2", "MediaUrl0": "https://media.example/a.png"}, {"NumMedia": "lots"},
     {"From": f"whatsapp:{US}"}, {"MediaUrl0": "x", "NumMedia": "1"}],
)  # fmt: skip
async def test_a_signed_form_that_is_no_inbound_message_is_400_and_stores_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, bad: dict[str, str]
) -> None:
    answer = await post_form(api, form(**{"Body": "STOP", **bad}))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
    if bad == {"MessageSid": ""}:
        garbage = await post_form(api, b"\xff\xfe%%%=&&MessageSid")
        assert garbage.status_code == 400, garbage.text
    assert await rows(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_twilios_retry_of_one_message_sid_is_stored_and_acted_on_once(
    api: httpx.AsyncClient, control: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = await play(control, body="STOP")
    again = await play(control, body="STOP", message_sid=first["message_sid"])
    assert (first["status"], again["status"]) == (200, 200)
    assert await rows(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM callbacks WHERE inbound_id IS NOT NULL") == 1
    metrics = (await api.get("/metrics")).text
    assert 'postline_inbound_messages_total{action="opt_out",channel="sms"} 1.0' in metrics
    await pool.execute("DELETE FROM suppressions")
    await play(control, body="STOP", message_sid=first["message_sid"])
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0  # not applied again


async def send(api: httpx.AsyncClient, sender: str, to: str = US) -> str:
    payload = {"type": "sms", "from": sender, "to": to, "body": "Your code is 1234"}
    answer = await api.post("/api/v1/messages/send", json=payload)
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def provider_calls(control: httpx.AsyncClient, to: str = US) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = (
        await control.get("/_sim/requests", params={"to": to})
    ).json()["requests"]
    return requests


async def test_stop_suppresses_that_sender_without_a_provider_call_and_start_lifts_it(
    api: httpx.AsyncClient, control: httpx.AsyncClient, settings: Any
) -> None:
    assert (await play(control, body="  Stop ")).get("status") == 200
    async with running_worker(settings):
        stopped = await message_reaches(api, await send(api, OURS), "failed", "sent", "delivered")
        assert stopped["status"] == "failed"
        assert stopped["error"]["code"] == "suppressed"
        assert await provider_calls(control) == []
        other = await message_reaches(api, await send(api, OTHER), "sent", "delivered", "failed")
        assert other["status"] in ("sent", "delivered")  # STOP was to OURS only
        assert [r["from"] for r in await provider_calls(control)] == [OTHER]
        await play(control, body="start")
        again = await message_reaches(api, await send(api, OURS), "sent", "delivered", "failed")
        assert again["status"] in ("sent", "delivered")
        assert [r["from"] for r in await provider_calls(control)] == [OTHER, OURS]


async def test_stopall_suppresses_every_sender_and_start_lifts_only_opt_outs(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    await play(control, body="STOPALL", channel="whatsapp")
    listed = (await api.get("/api/v1/suppressions", params={"recipient": US})).json()["items"]
    assert [(s["channel"], s["sender"], s["reason"], s["source"]) for s in listed] == [
        ("whatsapp", None, "opt_out", "inbound")]  # fmt: skip
    manual = {"channel": "whatsapp", "recipient": US, "sender": OTHER}
    assert (await api.post("/api/v1/suppressions", json=manual)).status_code == 201
    await play(control, body="YES", channel="whatsapp")
    left = (await api.get("/api/v1/suppressions", params={"recipient": US})).json()["items"]
    assert [(s["sender"], s["reason"]) for s in left] == [(OTHER, "manual")]


async def test_help_is_answered_in_twiml_with_the_configured_reply(
    api: httpx.AsyncClient, control: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    played = await play(control, body="help")
    assert played["reply"] == HELP
    assert "&amp;" in played["answer"] and "&lt;or&gt;" in played["answer"]
    [recorded] = (await control.get("/_sim/inbound")).json()["inbound"]
    assert recorded["reply"] == HELP
    direct = await post_form(api, form(Body="Info"))
    assert direct.headers["content-type"].startswith("text/xml")
    [item, _] = (await api.get("/api/v1/inbound")).json()["items"]
    assert (item["keyword"], item["action"], item["reply"]) == ("INFO", "help", HELP)
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_the_received_callback_arrives_signed_as_standard_webhooks(
    api: httpx.AsyncClient, control: httpx.AsyncClient, settings: Any, receiver: Receiver
) -> None:
    played = await play(control, body="Photo", media_urls=["https://media.example/p.jpg"])
    async with running_worker(settings):

        async def called() -> bool:
            return len(receiver.calls) >= 1

        await wait_for(called, timeout=15, what="the message.received callback")
    headers, body = receiver.calls[0]
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "message.received"
    [item] = (await api.get("/api/v1/inbound")).json()["items"]
    assert event["data"] == item
    assert item["provider_message_id"] == played["message_sid"]
    assert item["channel"] == "mms"
    assert item["media"] == [{"url": "https://media.example/p.jpg", "content_type": "image/jpeg"}]
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body + b" ", headers)


async def test_the_list_filters_by_sender_number_and_channel_and_pages_newest_first(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    sids = [(await play(control, body=f"m{i}", **extra))["message_sid"] for i, extra in enumerate(
        [{}, {"from": OTHER}, {"to": OTHER}, {"channel": "whatsapp"}, {}])]  # fmt: skip

    async def listed(**params: Any) -> list[str]:
        answer = await api.get("/api/v1/inbound", params=params)
        assert answer.status_code == 200, answer.text
        return [item["provider_message_id"] for item in answer.json()["items"]]

    assert await listed() == sids[::-1]
    assert await listed(**{"from": OTHER}) == [sids[1]]
    assert await listed(to=OTHER) == [sids[2]]
    assert await listed(to=f"whatsapp:{OURS}", channel="whatsapp") == [sids[3]]
    assert await listed(channel="sms", **{"from": US}) == [sids[4], sids[2], sids[0]]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/inbound", params=params)).json()
        seen += [item["provider_message_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sids[::-1]
    for bad in ({"from": "555"}, {"to": "a@b.example"}, {"channel": "email"}, {"cursor": "x"}):
        assert (await api.get("/api/v1/inbound", params=bad)).status_code == 422
