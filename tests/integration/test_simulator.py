"""The provider simulator over real HTTP, driven by the providers' own Python libraries.

If the `twilio` and `sendgrid` packages accept the simulator's answers (and
raise their own exceptions on its errors), Postline's adapters, which speak
the same wire format, can be tested against it with confidence.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from python_http_client.exceptions import BadRequestsError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Attachment, CustomArg, Mail
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from postline.simulator import RunningSimulator, SimulatorConfig, running_simulator

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "simulated-auth-token"
SENDGRID_KEY = "SG.simulated-api-key"
SENDER = "+15550001111"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
PROVIDER_SPECS = Path(__file__).resolve().parents[3] / "shared" / "provider-specs"


class SimulatorTwilioHttpClient(TwilioHttpClient):
    """The library's own HTTP client, with api.twilio.com swapped for the simulator."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        url = url.replace("https://api.twilio.com", self.base_url, 1)
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    config = SimulatorConfig(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        sendgrid_api_key=SENDGRID_KEY,
        seed=1234,
    )
    async with running_simulator(config) as running:
        yield running


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sim.base_url) as session:
        yield session


@pytest.fixture
def twilio_client(sim: RunningSimulator) -> Iterator[TwilioClient]:
    http_client = SimulatorTwilioHttpClient(sim.base_url)
    yield TwilioClient(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)
    assert http_client.session is not None
    http_client.session.close()


@pytest.fixture
def sendgrid_client(sim: RunningSimulator) -> SendGridAPIClient:
    return SendGridAPIClient(SENDGRID_KEY, host=sim.base_url)


def basic_auth(user: str = ACCOUNT_SID, password: str = AUTH_TOKEN) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def post_twilio(
    http: aiohttp.ClientSession,
    form: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST a CreateMessage form; `headers=None` means valid basic auth."""
    headers = basic_auth() if headers is None else headers
    async with http.post(MESSAGES_PATH, data=form, headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def post_sendgrid(
    http: aiohttp.ClientSession, mail: dict[str, Any], key: str = SENDGRID_KEY
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.post("/v3/mail/send", json=mail, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def minimal_mail(to: str = "ana@example.com") -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "noreply@example.com"},
        "subject": "Payment verified",
        "content": [{"type": "text/plain", "value": "Thank you"}],
    }


async def recorded(http: aiohttp.ClientSession, query: str = "") -> list[dict[str, Any]]:
    async with http.get(f"/_sim/requests{query}") as resp:
        assert resp.status == 200
        body: dict[str, list[dict[str, Any]]] = await resp.json()
        return body["requests"]


# -- Twilio, through the twilio library ----------------------------------------------


async def test_twilio_library_sends_mms_and_the_simulator_records_every_field(
    twilio_client: TwilioClient, http: aiohttp.ClientSession
) -> None:
    message = await asyncio.to_thread(
        twilio_client.messages.create,
        to="+15559876543",
        from_=SENDER,
        body="Your booking is confirmed",
        media_url=["https://cdn.example.com/ticket.png", "https://cdn.example.com/map.png"],
        status_callback="https://postline.example.com/api/v1/webhooks/twilio/status",
    )

    assert re.fullmatch(r"MM[0-9a-f]{32}", message.sid or "")
    assert message.status == "queued"
    assert message.to == "+15559876543"
    assert message.from_ == SENDER
    assert message.body == "Your booking is confirmed"
    assert message.num_media == "2"
    assert message.account_sid == ACCOUNT_SID
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert isinstance(message.date_created, datetime)
    assert message.date_sent is None
    assert message.error_code is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"

    [record] = await recorded(http)
    assert record["provider"] == "twilio"
    assert record["status"] == 201
    assert record["provider_message_id"] == message.sid
    assert record["to"] == "+15559876543"
    assert record["from"] == SENDER
    assert record["body"] == "Your booking is confirmed"
    assert record["media_urls"] == [
        "https://cdn.example.com/ticket.png",
        "https://cdn.example.com/map.png",
    ]
    assert record["status_callback"] == (
        "https://postline.example.com/api/v1/webhooks/twilio/status"
    )
    assert record["form"]["MediaUrl"] == record["media_urls"]
    assert record["form"]["To"] == "+15559876543"
    assert record["auth_ok"] is True
    assert record["seq"] == 1
    assert datetime.fromisoformat(record["received_at"]).tzinfo is not None


async def test_twilio_library_sends_sms_with_sm_sid_and_segments(
    twilio_client: TwilioClient,
) -> None:
    message = await asyncio.to_thread(
        twilio_client.messages.create, to="+15559876543", from_=SENDER, body="x" * 161
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid or "")
    assert message.num_media == "0"
    assert message.num_segments == "2"  # 161 GSM-7 characters need two segments


async def test_twilio_library_sends_whatsapp(
    twilio_client: TwilioClient, http: aiohttp.ClientSession
) -> None:
    message = await asyncio.to_thread(
        twilio_client.messages.create,
        to="whatsapp:+447700900123",
        from_="whatsapp:+15550001111",
        body="Your table is ready",
    )

    assert message.status == "queued"
    assert message.to == "whatsapp:+447700900123"
    [record] = await recorded(http, "?to=whatsapp:%2B447700900123")
    assert record["from"] == "whatsapp:+15550001111"
    assert record["provider_message_id"] == message.sid


async def test_twilio_library_raises_rest_exception_for_invalid_number(
    twilio_client: TwilioClient, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(
            twilio_client.messages.create, to="+0123", from_=SENDER, body="hello"
        )

    assert caught.value.status == 400
    assert caught.value.code == 21211
    assert "+0123" in caught.value.msg
    [record] = await recorded(http)
    assert (record["status"], record["error_code"], record["provider_message_id"]) == (
        400,
        21211,
        None,
    )


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SENDER, "Body": "hi"}, 21604),
        ({"To": "+15559876543", "Body": "hi"}, 21603),
        ({"To": "+15559876543", "From": SENDER}, 21602),
        ({"To": "15559876543", "From": SENDER, "Body": "hi"}, 21211),
        ({"To": "whatsapp:+15559876543", "From": SENDER, "Body": "hi"}, 21910),
        ({"To": "+15559876543", "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": "+15559876543", "From": SENDER, "Body": "hi", "StatusCallback": "nope"}, 21609),
    ],
)
async def test_twilio_validation_errors_use_twilio_codes_and_shape(
    http: aiohttp.ClientSession, form: dict[str, str], code: int
) -> None:
    status, body, _ = await post_twilio(http, form)

    assert status == 400
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }
    assert body["message"]


async def test_twilio_messaging_service_may_replace_from(http: aiohttp.ClientSession) -> None:
    service = "MG" + "2" * 32
    form = {"To": "+15559876543", "MessagingServiceSid": service, "Body": "hi"}
    status, body, _ = await post_twilio(http, form)

    assert status == 201
    assert body["messaging_service_sid"] == service
    assert body["from"] is None


async def test_twilio_success_fields_match_the_openapi_message_schema(
    http: aiohttp.ClientSession,
) -> None:
    spec_file = PROVIDER_SPECS / "twilio_api_v2010.json"
    if not spec_file.exists():
        pytest.skip(f"Twilio's OpenAPI document is not at {spec_file}")
    spec = json.loads(spec_file.read_text())
    schema = spec["components"]["schemas"]["api.v2010.account.message"]
    statuses = spec["components"]["schemas"]["message_enum_status"]["enum"]

    status, body, _ = await post_twilio(http, {"To": "+15559876543", "From": SENDER, "Body": "hi"})

    assert status == 201
    assert set(body) == set(schema["properties"])
    assert body["status"] in statuses
    assert re.fullmatch(schema["properties"]["sid"]["pattern"], body["sid"])
    for name, prop in schema["properties"].items():
        if prop.get("type") == "string" and body[name] is not None:
            assert isinstance(body[name], str), name


# -- SendGrid, through the sendgrid library ------------------------------------------


async def test_sendgrid_library_sends_mail_and_the_simulator_records_every_field(
    sendgrid_client: SendGridAPIClient, http: aiohttp.ClientSession
) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 receipt").decode()
    mail = Mail(
        from_email="bookings@example.com",
        to_emails="Ana@Example.com",
        subject="Payment verified",
        plain_text_content="Your payment was verified.",
        html_content="<p>Your payment was verified.</p>",
    )
    mail.attachment = Attachment(pdf, "receipt.pdf", "application/pdf", "attachment")
    mail.custom_arg = CustomArg("postline_id", "msg-42")

    response = await asyncio.to_thread(sendgrid_client.send, mail)

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", message_id)

    [record] = await recorded(http, "?provider=sendgrid")
    assert record["status"] == 202
    assert record["provider_message_id"] == message_id
    assert record["to"] == "Ana@Example.com"
    assert record["from"] == "bookings@example.com"
    assert record["subject"] == "Payment verified"
    assert record["text"] == "Your payment was verified."
    assert record["html"] == "<p>Your payment was verified.</p>"
    assert record["attachments"] == [
        {
            "content": pdf,
            "filename": "receipt.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
        }
    ]
    assert record["custom_args"] == {"postline_id": "msg-42"}
    assert record["json"] == mail.get()
    assert record["auth_ok"] is True


async def test_sendgrid_library_raises_on_validation_errors(
    sendgrid_client: SendGridAPIClient,
) -> None:
    bad = {"personalizations": [], "from": {"email": "not-an-address"}}

    with pytest.raises(BadRequestsError) as caught:
        await asyncio.to_thread(sendgrid_client.send, bad)

    errors = json.loads(caught.value.body)["errors"]
    assert {error["field"] for error in errors} == {
        "from.email",
        "personalizations",
        "subject",
        "content",
    }
    assert all(set(error) == {"message", "field", "help"} for error in errors)


async def test_sendgrid_checks_recipients_content_and_attachments(
    http: aiohttp.ClientSession,
) -> None:
    mail = minimal_mail("broken")
    mail["content"] = [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain"}]
    mail["attachments"] = [{"content": "not base64!"}]

    status, body, _ = await post_sendgrid(http, mail)

    assert status == 400
    fields = [error["field"] for error in json.loads(body)["errors"]]
    assert fields == [
        "personalizations.0.to.0.email",
        "content.1.value",
        "content",  # text/plain must come first
        "attachments.0.content",
        "attachments.0.filename",
    ]


# -- knobs ----------------------------------------------------------------------------


async def test_error_rate_one_answers_500_in_each_provider_shape(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.config.error_rate = 1.0

    status, body, _ = await post_twilio(http, {"To": "+15559876543", "From": SENDER, "Body": "hi"})
    assert status == 500
    assert body["code"] == 20500
    assert body["status"] == 500
    status, raw, _ = await post_sendgrid(http, minimal_mail())
    assert status == 500
    assert json.loads(raw)["errors"][0]["message"] == "internal error"


async def test_twilio_library_sees_500_as_rest_exception(
    sim: RunningSimulator, twilio_client: TwilioClient
) -> None:
    sim.config.error_rate = 1.0

    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(
            twilio_client.messages.create, to="+15559876543", from_=SENDER, body="hi"
        )

    assert (caught.value.status, caught.value.code) == (500, 20500)


async def test_rate_429_answers_429_with_retry_after(
    http: aiohttp.ClientSession,
) -> None:
    async with http.put("/_sim/config", json={"rate_429": 1, "retry_after_seconds": 7}) as resp:
        assert resp.status == 200

    status, body, headers = await post_twilio(
        http, {"To": "+15559876543", "From": SENDER, "Body": "hi"}
    )
    assert (status, body["code"], headers["Retry-After"]) == (429, 20429, "7")
    status, raw, headers = await post_sendgrid(http, minimal_mail())
    assert (status, headers["Retry-After"]) == (429, "7")
    assert json.loads(raw)["errors"][0]["message"] == "too many requests"


async def test_latency_delays_the_answer(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.config.latency_ms = 200

    started = time.monotonic()
    status, _, _ = await post_twilio(http, {"To": "+15559876543", "From": SENDER, "Body": "hi"})
    elapsed = time.monotonic() - started

    assert status == 201
    assert elapsed >= 0.2


# -- scripts --------------------------------------------------------------------------


async def test_script_answers_are_consumed_in_order_then_normal(
    http: aiohttp.ClientSession,
) -> None:
    to = "+15550002222"
    script = {"to": to, "responses": [500, 500, 201]}
    async with http.post("/_sim/scripts", json=script) as resp:
        assert resp.status == 201

    form = {"To": to, "From": SENDER, "Body": "hi"}
    statuses = [(await post_twilio(http, form))[0] for _ in range(4)]
    # Another recipient is not affected by the script.
    other, _, _ = await post_twilio(http, {**form, "To": "+15550003333"})

    assert statuses == [500, 500, 201, 201]
    assert other == 201
    records = await recorded(http, f"?to=%2B{to[1:]}")
    assert [r["status"] for r in records] == [500, 500, 201, 201]


async def test_script_objects_set_retry_after_code_message_and_latency(
    http: aiohttp.ClientSession,
) -> None:
    email_script = {
        "to": "Bob@Example.com",
        "responses": [{"status": 429, "retry_after": 2}, {"status": 202, "latency_ms": 250}],
    }
    sms_script = {
        "to": "+15550004444",
        "responses": [{"status": 400, "code": 21610, "message": "Unsubscribed recipient"}],
    }
    for script in (email_script, sms_script):
        async with http.post("/_sim/scripts", json=script) as resp:
            assert resp.status == 201

    status, _, headers = await post_sendgrid(http, minimal_mail("bob@example.com"))
    assert (status, headers["Retry-After"]) == (429, "2")
    started = time.monotonic()
    status, _, headers = await post_sendgrid(http, minimal_mail("bob@example.com"))
    assert status == 202
    assert "X-Message-Id" in headers
    assert time.monotonic() - started >= 0.25
    status, body, _ = await post_twilio(http, {"To": "+15550004444", "From": SENDER, "Body": "hi"})
    assert (status, body["code"], body["message"]) == (400, 21610, "Unsubscribed recipient")


async def test_scripts_can_be_listed_cleared_and_are_validated(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/_sim/scripts", json={"to": "+15550005555", "responses": [503]}):
        pass
    async with http.get("/_sim/scripts") as resp:
        assert (await resp.json())["scripts"] == {"+15550005555": [{"status": 503}]}
    async with http.delete("/_sim/scripts") as resp:
        assert (await resp.json())["cleared"] == 1
    async with http.post("/_sim/scripts", json={"to": "+1", "responses": [99]}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_script"

    status, _, _ = await post_twilio(http, {"To": "+15550005555", "From": SENDER, "Body": "x"})
    assert status == 201


# -- auth -----------------------------------------------------------------------------


async def test_wrong_twilio_credentials_get_401_and_do_not_consume_scripts(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post("/_sim/scripts", json={"to": "+15559876543", "responses": [500]}):
        pass
    bad_client_http = SimulatorTwilioHttpClient(sim.base_url)
    client = TwilioClient(ACCOUNT_SID, "wrong-token", http_client=bad_client_http)
    try:
        with pytest.raises(TwilioRestException) as caught:
            await asyncio.to_thread(
                client.messages.create, to="+15559876543", from_=SENDER, body="hi"
            )
    finally:
        assert bad_client_http.session is not None
        bad_client_http.session.close()

    assert (caught.value.status, caught.value.code) == (401, 20003)
    missing, _, _ = await post_twilio(
        http, {"To": "+15559876543", "From": SENDER, "Body": "hi"}, headers={}
    )
    assert missing == 401
    scripted, _, _ = await post_twilio(http, {"To": "+15559876543", "From": SENDER, "Body": "x"})
    assert scripted == 500
    assert [r["auth_ok"] for r in await recorded(http)] == [False, False, True]


async def test_wrong_sendgrid_key_gets_401(sim: RunningSimulator) -> None:
    client = SendGridAPIClient("SG.wrong", host=sim.base_url)

    with pytest.raises(UnauthorizedError) as caught:
        await asyncio.to_thread(client.send, minimal_mail())

    assert caught.value.status_code == 401
    assert json.loads(caught.value.body)["errors"][0]["field"] is None


async def test_auth_is_not_checked_when_no_credentials_are_configured() -> None:
    async with (
        running_simulator(SimulatorConfig()) as open_sim,
        aiohttp.ClientSession(base_url=open_sim.base_url) as http,
    ):
        status, _, _ = await post_twilio(
            http, {"To": "+15559876543", "From": SENDER, "Body": "hi"}, headers={}
        )
        mail_status, _, _ = await post_sendgrid(http, minimal_mail(), key="anything")

    assert (status, mail_status) == (201, 202)


# -- inspection, config, health -------------------------------------------------------


async def test_inspection_filters_stats_and_clear(http: aiohttp.ClientSession) -> None:
    for to in ("+15550000001", "+15550000002", "+15550000001"):
        await post_twilio(http, {"To": to, "From": SENDER, "Body": "hi"})
    await post_sendgrid(http, minimal_mail("ana@example.com"))
    await post_twilio(http, {"To": "bad", "From": SENDER, "Body": "hi"})

    assert [r["seq"] for r in await recorded(http, "?to=%2B15550000001")] == [1, 3]
    # An unencoded "+" (read as a space) still finds the number.
    assert [r["seq"] for r in await recorded(http, "?to=+15550000001")] == [1, 3]
    assert [r["seq"] for r in await recorded(http, "?to=ANA@example.com")] == [4]
    assert [r["seq"] for r in await recorded(http, "?provider=twilio&since_seq=2")] == [3, 5]
    assert [r["seq"] for r in await recorded(http, "?since_seq=1&limit=2")] == [2, 3]
    async with http.get("/_sim/stats") as resp:
        assert await resp.json() == {
            "received": 5,
            "in_flight": 0,
            "max_in_flight": 1,
            "abandoned": 0,
            "by_provider": {"twilio": 4, "sendgrid": 1},
            "by_status": {"201": 3, "202": 1, "400": 1},
        }
    async with http.get("/_sim/requests?limit=-1") as resp:
        assert resp.status == 400
    async with http.get("/_sim/requests?provider=mailgun") as resp:
        assert resp.status == 400

    async with http.delete("/_sim/requests") as resp:
        assert resp.status == 200
    assert await recorded(http) == []
    async with http.get("/_sim/stats") as resp:
        assert (await resp.json())["received"] == 0
    await post_twilio(http, {"To": "+15550000001", "From": SENDER, "Body": "hi"})
    # seq keeps counting after a clear, so a poller using since_seq never re-reads.
    assert [r["seq"] for r in await recorded(http)] == [6]


async def test_keep_requests_bounds_the_log(http: aiohttp.ClientSession) -> None:
    async with http.put("/_sim/config", json={"keep_requests": 2}) as resp:
        assert resp.status == 200
    for i in range(4):
        await post_twilio(http, {"To": f"+1555000000{i}", "From": SENDER, "Body": "hi"})

    assert [r["seq"] for r in await recorded(http)] == [3, 4]


async def test_config_get_put_and_rejections(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.put("/_sim/config", json={"latency_ms": 5, "error_rate": 0.5}) as resp:
        assert resp.status == 200
        assert (await resp.json())["latency_ms"] == 5.0
    assert (sim.config.latency_ms, sim.config.error_rate) == (5.0, 0.5)

    for patch in ({"latency": 5}, {"error_rate": 1.5}, {"keep_requests": True}, [1]):
        async with http.put("/_sim/config", json=patch) as resp:
            assert resp.status == 400, patch
            assert (await resp.json())["error"]["code"] == "invalid_config"
    async with http.put("/_sim/config", data=b"{not json") as resp:
        assert resp.status == 400

    async with http.get("/_sim/config") as resp:
        config = await resp.json()
    assert config["latency_ms"] == 5.0
    assert config["error_rate"] == 0.5
    assert config["twilio_account_sid"] == ACCOUNT_SID


async def test_seed_makes_ids_replayable(http: aiohttp.ClientSession) -> None:
    form = {"To": "+15559876543", "From": SENDER, "Body": "hi"}
    sids = []
    for _ in range(2):
        async with http.put("/_sim/config", json={"seed": 99}) as resp:
            assert resp.status == 200
        sids.append((await post_twilio(http, form))[1]["sid"])

    assert sids[0] == sids[1]


async def test_health(http: aiohttp.ClientSession) -> None:
    async with http.get("/_sim/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


# -- the blocking entry point ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _poll(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    """Await `check` until it is true; fail with `what` after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            # Another process's state: polling over HTTP is the only way to see it.
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM delivery is POSIX-only")
async def test_run_simulator_finishes_in_flight_requests_on_sigterm() -> None:
    port = _free_port()
    code = (
        "from postline.simulator import SimulatorConfig, run_simulator\n"
        f"run_simulator('127.0.0.1', {port}, SimulatorConfig(latency_ms=500))"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:

            async def healthy() -> bool:
                try:
                    async with http.get("/_sim/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            async def request_in_flight() -> bool:
                async with http.get("/_sim/stats") as resp:
                    return bool((await resp.json())["in_flight"])

            await _poll(healthy, "the simulator process to answer", within=20)
            form = {"To": "+15559876543", "From": SENDER, "Body": "hi"}
            in_flight = asyncio.create_task(post_twilio(http, form))
            await _poll(request_in_flight, "the request to reach the handler", within=5)
            proc.send_signal(signal.SIGTERM)
            status, body, _ = await in_flight

        assert (status, body["status"]) == (201, "queued")
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
