"""Delivery receipts end to end: API + worker + simulator, real PostgreSQL, Redis and HTTP.

The simulator sends the signed callbacks Twilio and SendGrid would send; the
tests also forge, replay and reorder receipts by hand to check the guards.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from postline.domain.outcomes import Outcome
from postline.domain.statuses import Status
from postline.providers.signatures import public_key_base64, sendgrid_sign, twilio_signature
from postline.settings import Settings
from postline.simulator import RunningSimulator
from postline.store.activity import ActivityStore
from postline.store.messages import MessageStore
from postline.store.receipts import ReceiptStore
from postline.store.stats import StatsStore
from tests.support.harness import (
    SIM_SID,
    SIM_TOKEN,
    receipt_settings,
    receipting_simulator,
    running_api,
    running_worker,
    wait_for,
)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Paid"}
EMAIL = {
    "from": "Bookings <bookings@example.com>",
    "to": "ana@example.org",
    "type": "email",
    "subject": "Payment received",
    "body": "Thanks!",
}
TWILIO_PATH = "/api/v1/webhooks/twilio/status"
SENDGRID_PATH = "/api/v1/webhooks/sendgrid/events"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with receipting_simulator() as running:
        yield running


@pytest.fixture
def settings(
    database_url: str, redis_url: str, sim: RunningSimulator, pool: asyncpg.Pool, redis: Any
) -> Settings:
    # `pool` and `redis` are requested so each test starts from empty tables and queues.
    return receipt_settings(database_url, redis_url, sim)


@pytest.fixture
async def api(settings: Settings, sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        sim.config.sendgrid_event_webhook_url = base + SENDGRID_PATH
        yield client


@pytest.fixture
def worker_settings(settings: Settings, api: httpx.AsyncClient) -> Settings:
    # The worker's StatusCallback points at the API under test.
    return settings.model_copy(update={"public_base_url": str(api.base_url).rstrip("/")})


async def control(sim: RunningSimulator, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        answer = await client.request(method, path, **kwargs)
        answer.raise_for_status()
        return answer.json()


async def message(api: httpx.AsyncClient, message_id: str) -> dict[str, Any]:
    answer = await api.get(f"/api/v1/messages/{message_id}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def events(api: httpx.AsyncClient, message_id: str) -> list[tuple[str, str | None]]:
    answer = await api.get(f"/api/v1/messages/{message_id}/events")
    return [(e["status"], e["detail"]) for e in answer.json()]


async def wait_status(api: httpx.AsyncClient, message_id: str, want: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        current = await message(api, message_id)
        return current if current["status"] == want else None

    found: dict[str, Any] = await wait_for(reached, timeout=10, what=f"{message_id} {want}")
    return found


async def send(api: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    answer = await api.post("/api/v1/messages/send", json=payload)
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def sent_quietly(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings, payload: Any
) -> dict[str, Any]:
    """A message the provider accepted, with no receipt coming."""
    sim.config.callbacks_enabled = False
    message_id = await send(api, payload)
    async with running_worker(worker_settings):
        return await wait_status(api, message_id, "sent")


async def post_twilio(
    api: httpx.AsyncClient, form: dict[str, str], *, token: str | None = SIM_TOKEN
) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        url = str(api.base_url).rstrip("/") + TWILIO_PATH
        headers["X-Twilio-Signature"] = twilio_signature(token, url, form)
    return await api.post(TWILIO_PATH, content=urlencode(form), headers=headers)


def twilio_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "AccountSid": SIM_SID, **extra}


async def post_sendgrid(
    api: httpx.AsyncClient,
    sendgrid_events: list[dict[str, Any]],
    key: ec.EllipticCurvePrivateKey | None,
    *,
    at: float | None = None,
) -> httpx.Response:
    """Posts `sendgrid_events` signed by `key` with the timestamp `at` (default: now)."""
    payload = orjson.dumps(sendgrid_events)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        timestamp = str(int(time.time() if at is None else at))
        headers["X-Twilio-Email-Event-Webhook-Signature"] = sendgrid_sign(key, payload, timestamp)
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
    return await api.post(SENDGRID_PATH, content=payload, headers=headers)


def sg_event(current: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": current["to"],
        "timestamp": int(time.time()),
        "event": kind,
        "sg_message_id": f"{current['provider_message_id']}.filterdrecv-test-0",
        "postline_id": current["id"],
        **extra,
    }


async def test_sms_ends_delivered_through_the_signed_twilio_callback(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    message_id = await send(api, SMS)
    async with running_worker(worker_settings):
        done = await wait_status(api, message_id, "delivered")

    assert done["delivered_at"] is not None and done["error"] is None
    assert await events(api, message_id) == [
        ("pending", "accepted"),
        ("sending", None),
        ("sent", None),
        ("delivered", "receipt from twilio: delivered"),
    ]
    # Both callbacks (`sent`, then `delivered`) were accepted on the first try.
    callbacks = await control(sim, "GET", "/_sim/callbacks")
    assert [(c["events"], c["status"]) for c in callbacks["callbacks"]] == [
        (["sent"], 200),
        (["delivered"], 200),
    ]


async def test_email_ends_delivered_through_the_signed_sendgrid_event(
    api: httpx.AsyncClient, worker_settings: Settings
) -> None:
    message_id = await send(api, EMAIL)
    async with running_worker(worker_settings):
        done = await wait_status(api, message_id, "delivered")

    assert done["provider"] == "sendgrid" and done["delivered_at"] is not None
    assert (await events(api, message_id))[-2:] == [
        ("sent", None),
        ("delivered", "receipt from sendgrid: delivered"),
    ]


async def test_a_bounce_leaves_the_email_undelivered_with_the_reason(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    # The receiving server refused it: SPEC 3.1 calls that undelivered, as Twilio does.
    script = {"to": EMAIL["to"], "responses": [{"status": 202, "receipt": "undelivered"}]}
    await control(sim, "POST", "/_sim/scripts", json=script)
    message_id = await send(api, EMAIL)
    async with running_worker(worker_settings):
        done = await wait_status(api, message_id, "undelivered")

    assert done["error"] == {
        "code": "bounce",
        "message": "550 5.1.1 The email account that you tried to reach does not exist.",
    }
    answer = await api.get(f"/api/v1/messages/{message_id}/events")
    last = answer.json()[-1]
    assert (last["status"], last["detail"], last["attempt"]) == (
        "undelivered",
        "receipt from sendgrid: bounce",
        1,
    )
    assert last["error"] == done["error"]


async def test_an_undelivered_sms_keeps_twilios_error_code(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sim.config.delivery_outcome = "undelivered"
    message_id = await send(api, SMS)
    async with running_worker(worker_settings):
        done = await wait_status(api, message_id, "undelivered")

    assert done["error"] == {"code": "30003", "message": "Unreachable destination handset"}
    assert done["delivered_at"] is None


async def test_unsigned_and_wrongly_signed_requests_are_refused_and_change_nothing(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sms = await sent_quietly(api, sim, worker_settings, SMS)
    email = await sent_quietly(api, sim, worker_settings, EMAIL)
    before = [await events(api, sms["id"]), await events(api, email["id"])]
    delivered = twilio_form(sms["provider_message_id"], "delivered")
    stranger = ec.generate_private_key(ec.SECP256R1())

    refused = [
        await post_twilio(api, delivered, token=None),
        await post_twilio(api, delivered, token="not-the-auth-token"),
        await post_sendgrid(api, [sg_event(email, "delivered")], None),
        await post_sendgrid(api, [sg_event(email, "delivered")], stranger),
    ]

    for answer in refused:
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "forbidden"
    assert [
        (await message(api, sms["id"]))["status"],
        (await message(api, email["id"]))["status"],
    ] == [
        "sent",
        "sent",
    ]
    assert [await events(api, sms["id"]), await events(api, email["id"])] == before


async def test_a_tampered_body_fails_the_sendgrid_signature(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    email = await sent_quietly(api, sim, worker_settings, EMAIL)
    timestamp = str(int(time.time()))
    signed = orjson.dumps([sg_event(email, "processed")])
    forged = orjson.dumps([sg_event(email, "bounce", reason="forged")])
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_sign(
            sim.receipts.private_key(), signed, timestamp
        ),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }

    answer = await api.post(SENDGRID_PATH, content=forged, headers=headers)

    assert answer.status_code == 403
    assert (await message(api, email["id"]))["status"] == "sent"


@pytest.mark.parametrize("skew", [-11 * 60, 11 * 60], ids=["11-minutes-old", "11-minutes-ahead"])
async def test_a_signed_sendgrid_batch_more_than_10_minutes_off_is_refused_as_a_replay(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings, skew: int
) -> None:
    email = await sent_quietly(api, sim, worker_settings, EMAIL)
    before = await events(api, email["id"])
    batch = [sg_event(email, "delivered")]

    answer = await post_sendgrid(api, batch, sim.receipts.private_key(), at=time.time() + skew)

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    assert "replay" in answer.json()["error"]["message"]
    assert (await message(api, email["id"]))["status"] == "sent"
    assert await events(api, email["id"]) == before
    # The same batch signed now is applied: only its time was refused.
    assert (await post_sendgrid(api, batch, sim.receipts.private_key())).status_code == 200
    assert (await message(api, email["id"]))["status"] == "delivered"


async def test_without_a_configured_key_sendgrid_events_are_refused(
    settings: Settings, sim: RunningSimulator
) -> None:
    keyless = settings.model_copy(update={"sendgrid_webhook_public_key": None})
    async with running_api(keyless) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await post_sendgrid(api, [], sim.receipts.private_key())
    assert answer.status_code == 403


async def test_late_and_duplicate_receipts_change_nothing(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sms = await sent_quietly(api, sim, worker_settings, SMS)
    sid = sms["provider_message_id"]
    assert (await post_twilio(api, twilio_form(sid, "delivered"))).status_code == 200
    delivered = await message(api, sms["id"])
    history = await events(api, sms["id"])
    assert delivered["status"] == "delivered" and history[-1][0] == "delivered"

    for late in ("sent", "delivered", "undelivered", "failed", "delivered"):
        answer = await post_twilio(api, twilio_form(sid, late, ErrorCode="30008"))
        assert answer.status_code == 200

    assert await message(api, sms["id"]) == delivered
    assert await events(api, sms["id"]) == history


async def test_undelivered_may_still_become_delivered(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sms = await sent_quietly(api, sim, worker_settings, SMS)
    sid = sms["provider_message_id"]

    await post_twilio(api, twilio_form(sid, "undelivered", ErrorCode="30005"))
    assert (await message(api, sms["id"]))["error"]["code"] == "30005"
    await post_twilio(api, twilio_form(sid, "delivered"))

    done = await message(api, sms["id"])
    assert (done["status"], done["error"]) == ("delivered", None)
    assert [s for s, _ in await events(api, sms["id"])][-2:] == ["undelivered", "delivered"]


async def test_one_sendgrid_batch_applies_the_strongest_report_per_message(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings, redis: Any
) -> None:
    first = await sent_quietly(api, sim, worker_settings, EMAIL)
    second = await sent_quietly(api, sim, worker_settings, {**EMAIL, "to": "bo@example.org"})
    batch = [
        sg_event(first, "processed"),
        sg_event(first, "bounce", type="bounce", reason="mailbox full"),
        sg_event(second, "dropped", reason="Bounced Address"),
        sg_event(first, "delivered"),
        sg_event(first, "delivered"),
        {"event": "delivered", "postline_id": str(uuid.uuid4())},  # not ours
    ]

    answer = await post_sendgrid(api, batch, sim.receipts.private_key())

    assert answer.status_code == 200
    assert (await message(api, first["id"]))["status"] == "delivered"
    assert [s for s, _ in await events(api, first["id"])].count("delivered") == 1
    failed = await message(api, second["id"])
    assert (failed["status"], failed["error"]) == (
        "failed",
        {"code": "dropped", "message": "Bounced Address"},
    )
    # Every message that ends failed has its dead letter, a receipt's failure too.
    dead = [fields["id"] for _, fields in await redis.xrange("message_queue:dead")]
    assert dead == [second["id"]]


async def test_the_sg_message_id_finds_the_message_without_postline_id(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    email = await sent_quietly(api, sim, worker_settings, EMAIL)
    event = sg_event(email, "delivered")
    del event["postline_id"]

    await post_sendgrid(api, [event], sim.receipts.private_key())

    assert (await message(api, email["id"]))["status"] == "delivered"


async def sends_counted(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """The one send as each count of outcomes sees it: the last minute's
    throughput, the cluster-wide total, the dashboard's series."""
    stats, activity = StatsStore(pool), ActivityStore(pool)
    totals = (await stats.outcome_totals()).counts
    series = await activity.buckets(since=time.time() - 600, width=5)
    return (
        (await stats.throughput()).sent,
        totals.get(("email", "sent"), 0),
        sum(b.count for b in series if b.status == "sent"),
    )


async def test_a_deferral_is_noted_once_and_changes_no_status(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings, pool: asyncpg.Pool
) -> None:
    email = await sent_quietly(api, sim, worker_settings, EMAIL)
    assert await sends_counted(pool) == (1, 1, 1)
    deferred = sg_event(email, "deferred", attempt="1", response="421 try later")

    for _ in range(2):  # SendGrid may deliver the same batch twice
        await post_sendgrid(api, [deferred], sim.receipts.private_key())

    assert (await message(api, email["id"]))["status"] == "sent"
    assert (await events(api, email["id"]))[-1] == (
        "sent",
        "receipt from sendgrid: deferred (attempt 1): 421 try later",
    )
    assert [s for s, _ in await events(api, email["id"])].count("sent") == 2
    # A note, not a second send: no count of outcomes moves.
    assert await sends_counted(pool) == (1, 1, 1)


async def test_a_receipt_before_the_send_is_recorded_is_applied_once_it_is(
    api: httpx.AsyncClient, sim: RunningSimulator, pool: asyncpg.Pool
) -> None:
    """SendGrid finds the message `sending`; Twilio cannot find its SID at all."""
    store = MessageStore(pool)
    email_id, sms_id = await send(api, EMAIL), await send(api, SMS)
    claimed = await store.claim([uuid.UUID(email_id), uuid.UUID(sms_id)], holder="w1", lease=30)
    assert {c.message.status for c in claimed} == {Status.SENDING}
    email = {"id": email_id, "to": EMAIL["to"], "provider_message_id": "early-sg-id"}
    sid = "SM" + uuid.uuid4().hex

    early = [
        await post_sendgrid(api, [sg_event(email, "delivered")], sim.receipts.private_key()),
        await post_twilio(api, twilio_form(sid, "delivered")),
    ]

    assert [a.status_code for a in early] == [200, 200]
    assert await ReceiptStore(pool).parked_count() == 2
    assert (await message(api, email_id))["status"] == "sending"
    # The worker's own write still lands: the receipt did not take the row from it.
    landed = await store.complete(
        [
            Outcome(uuid.UUID(email_id), 1, Status.SENT, "sendgrid", "early-sg-id"),
            Outcome(uuid.UUID(sms_id), 1, Status.SENT, "twilio", sid),
        ]
    )
    assert landed == {uuid.UUID(email_id), uuid.UUID(sms_id)}
    for message_id, provider in ((email_id, "sendgrid"), (sms_id, "twilio")):
        await wait_status(api, message_id, "delivered")
        assert await events(api, message_id) == [
            ("pending", "accepted"),
            ("sending", None),
            ("sent", None),
            ("delivered", f"receipt from {provider}: delivered"),
        ]
    assert await ReceiptStore(pool).parked_count() == 0


async def test_a_receipt_for_an_unknown_sid_is_acknowledged_then_expires(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    answer = await post_twilio(api, twilio_form("SM" + "f" * 32, "delivered"))

    assert answer.status_code == 200
    receipts = ReceiptStore(pool)
    assert await receipts.parked_count() == 1
    assert (await receipts.settle_parked(max_age=3600)).expired == 0
    settled = await receipts.settle_parked(max_age=0)
    assert (settled.expired, settled.applied) == (1, [])
    assert await receipts.parked_count() == 0


async def test_public_base_url_is_the_url_twilio_signs(
    settings: Settings, api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sms = await sent_quietly(api, sim, worker_settings, SMS)
    public = "https://postline.example.com"
    proxied = settings.model_copy(update={"public_base_url": public + "/"})
    form = twilio_form(sms["provider_message_id"], "delivered")

    async def post(client: httpx.AsyncClient, path: str, signed_url: str) -> int:
        headers = {
            "X-Twilio-Signature": twilio_signature(SIM_TOKEN, signed_url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        answer = await client.post(path, content=urlencode(form), headers=headers)
        return answer.status_code

    async with running_api(proxied) as base, httpx.AsyncClient(base_url=base) as behind_proxy:
        own_url = await post(behind_proxy, TWILIO_PATH, base + TWILIO_PATH)
        other_query = await post(behind_proxy, TWILIO_PATH, public + TWILIO_PATH + "?x=1")
        public_url = await post(behind_proxy, TWILIO_PATH + "?x=1", public + TWILIO_PATH + "?x=1")

    assert (own_url, other_query, public_url) == (403, 403, 200)
    assert (await message(api, sms["id"]))["status"] == "delivered"


async def test_signed_garbage_is_a_400_not_a_500(
    api: httpx.AsyncClient, sim: RunningSimulator
) -> None:
    key = sim.receipts.private_key()
    timestamp = str(int(time.time()))
    for body in (b"{not json", b'{"event": "delivered"}'):
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": sendgrid_sign(key, body, timestamp),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        answer = await api.post(SENDGRID_PATH, content=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "bad_request"
    assert public_key_base64(key) == sim.receipts.public_key()


async def test_concurrent_overlapping_batches_apply_each_message_once(
    api: httpx.AsyncClient, sim: RunningSimulator, worker_settings: Settings
) -> None:
    sim.config.callbacks_enabled = False
    ids = [await send(api, {**EMAIL, "to": f"guest{i}@example.org"}) for i in range(20)]
    async with running_worker(worker_settings):
        sent = [await wait_status(api, message_id, "sent") for message_id in ids]
    key = sim.receipts.private_key()
    shuffled = random.Random(5)

    def batch() -> list[dict[str, Any]]:
        chosen = [sg_event(m, "delivered") for m in sent]
        shuffled.shuffle(chosen)
        return chosen

    answers = await asyncio.gather(*(post_sendgrid(api, batch(), key) for _ in range(30)))

    assert {a.status_code for a in answers} == {200}
    for message_id in ids:
        history = [s for s, _ in await events(api, message_id)]
        assert history.count("delivered") == 1 and history[-1] == "delivered"
