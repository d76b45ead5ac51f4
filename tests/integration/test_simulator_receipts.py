"""The simulator's delivery-status callbacks, received by a plain HTTP server and
verified with the providers' own libraries (twilio's RequestValidator, sendgrid's
EventWebhook)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from postline.simulator import RunningSimulator, SimulatorConfig, running_simulator
from tests.support.harness import wait_for

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "receipts-auth-token"
SENDGRID_KEY = "SG.receipts-key"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A stand-in for Postline's webhook endpoints: records, answers as told."""

    base_url: str = ""
    got: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hold_seconds: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(request.path_qs, dict(request.headers), await request.read()))
        if self.hold_seconds:
            await asyncio.sleep(self.hold_seconds)
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def forms(self) -> list[dict[str, str]]:
        return [dict(parse_qsl(r.body.decode())) for r in self.got]

    async def has(self, count: int) -> None:
        async def enough() -> bool:
            return len(self.got) >= count

        await wait_for(enough, timeout=5, what=f"{count} callbacks")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", found.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    config = SimulatorConfig(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        sendgrid_api_key=SENDGRID_KEY,
        callback_delay_ms=0,
        seed=7,
    )
    async with running_simulator(config) as running:
        yield running


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sim.base_url) as session:
        yield session


def basic_auth() -> dict[str, str]:
    token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def send_sms(
    http: aiohttp.ClientSession, callback: str | None, to: str = "+15559876543"
) -> str:
    form = {"To": to, "From": "+15550001111", "Body": "Booked"}
    if callback:
        form["StatusCallback"] = callback
    async with http.post(MESSAGES_PATH, data=form, headers=basic_auth()) as answer:
        assert answer.status == 201
        sid: str = (await answer.json())["sid"]
        return sid


async def send_mail(http: aiohttp.ClientSession, to: str = "ana@example.org") -> str:
    mail = {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"postline_id": "pl-1"}}],
        "from": {"email": "noreply@example.com"},
        "subject": "Paid",
        "content": [{"type": "text/plain", "value": "Thanks"}],
    }
    headers = {"Authorization": f"Bearer {SENDGRID_KEY}"}
    async with http.post("/v3/mail/send", json=mail, headers=headers) as answer:
        assert answer.status == 202
        return answer.headers["X-Message-Id"]


def twilio_valid(received: Received, url: str) -> bool:
    params = dict(parse_qsl(received.body.decode()))
    signature = received.headers["X-Twilio-Signature"]
    return bool(RequestValidator(AUTH_TOKEN).validate(url, params, signature))


async def test_twilio_sends_signed_sent_then_delivered(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    callback = f"{receiver.base_url}/api/v1/webhooks/twilio/status?tenant=a"
    sid = await send_sms(http, callback)

    await receiver.has(2)
    forms = receiver.forms()
    assert [f["MessageStatus"] for f in forms] == ["sent", "delivered"]
    assert forms[1] == {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": ACCOUNT_SID,
        "To": "+15559876543",
        "From": "+15550001111",
        "ApiVersion": "2010-04-01",
    }
    assert all(twilio_valid(r, callback) for r in receiver.got)
    assert receiver.got[0].path == "/api/v1/webhooks/twilio/status?tenant=a"
    assert receiver.got[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("outcome", "code", "statuses"),
    [
        ("undelivered", None, [("sent", None), ("undelivered", "30003")]),
        ("failed", None, [("failed", "30008")]),
        ("undelivered", 30005, [("sent", None), ("undelivered", "30005")]),
    ],
)
async def test_twilio_failure_outcomes_carry_an_error_code(
    sim: RunningSimulator,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    outcome: str,
    code: int | None,
    statuses: list[tuple[str, str | None]],
) -> None:
    sim.config.delivery_outcome = outcome
    sim.config.delivery_error_code = code
    await send_sms(http, f"{receiver.base_url}/status")

    await receiver.has(len(statuses))
    await sim.receipts.idle()
    assert [(f["MessageStatus"], f.get("ErrorCode")) for f in receiver.forms()] == statuses


async def test_a_script_item_chooses_one_messages_receipt(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    script = {"to": "+15550000042", "responses": [{"status": 201, "receipt": "failed"}]}
    async with http.post("/_sim/scripts", json=script) as answer:
        assert answer.status == 201

    scripted = await send_sms(http, f"{receiver.base_url}/status", to="+15550000042")
    await receiver.has(1)
    await sim.receipts.idle()
    plain = await send_sms(http, f"{receiver.base_url}/status", to="+15550000042")
    await receiver.has(3)

    by_sid = [(f["MessageSid"], f["MessageStatus"]) for f in receiver.forms()]
    assert by_sid == [(scripted, "failed"), (plain, "sent"), (plain, "delivered")]


async def test_no_status_callback_or_callbacks_off_means_no_callback(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await send_sms(http, None)
    sim.config.callbacks_enabled = False
    await send_sms(http, f"{receiver.base_url}/status")
    sim.config.twilio_auth_token = None  # nothing to sign with: nothing is sent
    sim.config.callbacks_enabled = True
    await send_sms(http, f"{receiver.base_url}/status")

    await sim.receipts.idle()
    assert receiver.got == []
    async with http.get("/_sim/callbacks") as answer:
        assert (await answer.json()) == {"callbacks": []}


async def test_callbacks_are_retried_until_accepted(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.config.delivery_outcome = "failed"
    receiver.answers = [500, 503]
    await send_sms(http, f"{receiver.base_url}/status")

    await receiver.has(3)
    await sim.receipts.idle()
    async with http.get("/_sim/callbacks") as answer:
        attempts = (await answer.json())["callbacks"]
    assert [(a["attempt"], a["status"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert attempts[0]["events"] == ["failed"] and attempts[0]["provider"] == "twilio"


async def test_callbacks_never_slow_the_provider_answer(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.hold_seconds = 3.0  # a receiver that takes its time

    started = time.perf_counter()
    await send_sms(http, f"{receiver.base_url}/status")
    await receiver.has(1)
    await send_sms(http, f"{receiver.base_url}/status")
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5
    assert len(receiver.got) < 4  # the callbacks are still being answered


async def test_callback_delay_is_honoured(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.config.callback_delay_ms = 400
    started = time.perf_counter()
    await send_sms(http, f"{receiver.base_url}/status")
    assert receiver.got == []

    await receiver.has(2)
    assert time.perf_counter() - started >= 0.4


async def public_key(http: aiohttp.ClientSession) -> str:
    async with http.get("/_sim/sendgrid/public-key") as answer:
        assert answer.status == 200
        key: str = (await answer.json())["public_key"]
        return key


async def test_sendgrid_posts_signed_events_with_custom_args_on_top(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sim.config.sendgrid_event_webhook_url = f"{receiver.base_url}/events"
    message_id = await send_mail(http)

    await receiver.has(1)
    [got] = receiver.got
    events = orjson.loads(got.body)
    assert [e["event"] for e in events] == ["processed", "delivered"]
    for event in events:
        assert event["email"] == "ana@example.org"
        assert event["postline_id"] == "pl-1"
        assert event["sg_message_id"].split(".", 1)[0] == message_id
        assert isinstance(event["timestamp"], int)
    signature = got.headers["X-Twilio-Email-Event-Webhook-Signature"]
    timestamp = got.headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    verifier = EventWebhook(await public_key(http))
    assert verifier.verify_signature(got.body.decode(), signature, timestamp)
    assert not verifier.verify_signature(got.body.decode() + " ", signature, timestamp)


@pytest.mark.parametrize(
    ("outcome", "kinds"),
    [("undelivered", ["processed", "bounce"]), ("failed", ["dropped"])],
)
async def test_sendgrid_failure_outcomes(
    sim: RunningSimulator,
    http: aiohttp.ClientSession,
    receiver: Receiver,
    outcome: str,
    kinds: list[str],
) -> None:
    sim.config.sendgrid_event_webhook_url = f"{receiver.base_url}/events"
    sim.config.delivery_outcome = outcome
    await send_mail(http)

    await receiver.has(1)
    events = orjson.loads(receiver.got[0].body)
    assert [e["event"] for e in events] == kinds
    assert events[-1]["reason"]


async def test_sendgrid_without_a_webhook_url_sends_nothing(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    await send_mail(http)

    await sim.receipts.idle()
    assert receiver.got == []


async def test_a_configured_private_key_signs_and_its_public_half_is_served(
    sim: RunningSimulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    generated = await public_key(http)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    patch = {"sendgrid_webhook_private_key": pem, "sendgrid_event_webhook_url": receiver.base_url}
    async with http.put("/_sim/config", json=patch) as answer:
        assert answer.status == 200

    served = await public_key(http)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert served == base64.b64encode(der).decode() != generated
    await send_mail(http)
    await receiver.has(1)
    got = receiver.got[0]
    assert EventWebhook(served).verify_signature(
        got.body.decode(),
        got.headers["X-Twilio-Email-Event-Webhook-Signature"],
        got.headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )


async def test_stopping_the_simulator_cancels_pending_callbacks(receiver: Receiver) -> None:
    config = SimulatorConfig(twilio_auth_token=AUTH_TOKEN, callback_delay_ms=60_000)
    async with running_simulator(config) as running, aiohttp.ClientSession() as http:
        form = {"To": "+15559876543", "From": "+15550001111", "Body": "x"}
        form["StatusCallback"] = f"{receiver.base_url}/status"
        url = f"{running.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        async with http.post(url, data=form, headers=basic_auth()) as answer:
            assert answer.status == 201
    # Leaving the block did not wait a minute, and nothing was sent.
    assert receiver.got == []
