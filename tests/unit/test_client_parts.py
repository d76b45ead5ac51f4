"""The client's pure parts: the message mirror, retry decisions, callback checks.

The HTTP behaviour is proved against the real API in
tests/integration/test_client.py; these pin the rules in milliseconds.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from postline.callbacks import signing
from postline.client import (
    BadSignature,
    Client,
    Conflict,
    InvalidCallback,
    Message,
    StaleCallback,
    Unreachable,
    verify_callback,
)
from postline.client.models import Problem
from postline.client.retrying import Attempts, RetryPolicy, retry_after
from postline.domain.message import public_view
from tests.support.messages import new_message

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def test_the_client_message_mirrors_every_field_the_api_shows() -> None:
    now = datetime.now(UTC)
    stored = new_message(
        attempts=2, error_code="30003", error_message="Unreachable", sent_at=now,
        next_attempt_at=now + timedelta(seconds=5), metadata={"order": 7},
        attachments=["https://example.com/a.png"],
    )  # fmt: skip
    shown = public_view(stored)
    mirrored = {f.name.rstrip("_") for f in dataclasses.fields(Message)}
    assert set(shown) == mirrored
    message = Message.from_json(shown)
    assert message.id == str(stored.id) and message.from_ == stored.from_addr
    assert message.sent_at == now and message.created_at == stored.created_at
    assert message.error == Problem(code="30003", message="Unreachable")
    assert message.attachments == ("https://example.com/a.png",)
    assert message.metadata == {"order": 7}


def test_fields_a_newer_api_adds_are_ignored() -> None:
    shown = public_view(new_message()) | {"priority": "high"}
    assert Message.from_json(shown).status == "pending"


@pytest.mark.parametrize("retry", range(8))
def test_backoff_is_jittered_exponential_and_capped(retry: int) -> None:
    policy = RetryPolicy(backoff=0.5, max_wait=10)
    waits = [policy.wait(retry) for _ in range(50)]
    assert all(0 <= w <= min(10, 0.5 * 2**retry) for w in waits)
    assert len(set(waits)) > 1


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_wait=10)
    assert policy.wait(0, retry_after=3) == 3
    assert policy.wait(0, retry_after=3600) == 10


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after("7") == 7
    assert retry_after(format_datetime(now + timedelta(seconds=20), usegmt=True), now=now) == 20
    assert retry_after("soon") is None
    assert retry_after(None) is None


def answer(status: int, code: str = "x", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": "m", "details": []}}
    return httpx.Response(status, json=body, headers=headers)


def test_503_and_429_are_retried_until_the_budget_is_spent() -> None:
    attempts = Attempts(RetryPolicy(retries=2, max_wait=5), replayable=False, keyed=False)
    assert attempts.after_answer(answer(503)) is not None
    assert attempts.after_answer(answer(429, **{"Retry-After": "4"})) == 4
    assert attempts.after_answer(answer(503)) is None


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 500])
def test_other_errors_are_final(status: int) -> None:
    attempts = Attempts(RetryPolicy(), replayable=True, keyed=True)
    assert attempts.after_answer(answer(status)) is None


def test_a_send_still_being_stored_is_asked_again_only_with_its_key() -> None:
    in_progress = answer(409, "idempotency_in_progress")
    assert Attempts(RetryPolicy(), replayable=True, keyed=True).after_answer(in_progress)
    assert Attempts(RetryPolicy(), replayable=True, keyed=False).after_answer(in_progress) is None


def test_a_call_without_a_key_is_replayed_only_when_it_cannot_have_arrived() -> None:
    request = httpx.Request("POST", "http://api/batch")
    unkeyed = Attempts(RetryPolicy(), replayable=False, keyed=False)
    assert unkeyed.after_error(httpx.ConnectError("refused", request=request)) >= 0
    with pytest.raises(Unreachable):
        unkeyed.after_error(httpx.ReadTimeout("late", request=request))
    keyed = Attempts(RetryPolicy(), replayable=True, keyed=True)
    assert keyed.after_error(httpx.ReadTimeout("late", request=request)) >= 0


def test_every_try_of_a_send_carries_one_drawn_key() -> None:
    """MockTransport pins the loop's bookkeeping; the integration tier proves it over TCP."""
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) < 3:
            return answer(503)
        return httpx.Response(202, json=public_view(new_message()))

    transport = httpx.MockTransport(handler)
    with Client("http://api", retries=2, backoff=0.001, transport=transport) as client:
        client.send({"type": "sms"})
        assert len(keys) == 3 and len(set(keys)) == 1
        client.send({"type": "sms"})
    assert len(set(keys)) == 2


def test_a_final_409_is_a_conflict_with_the_envelope() -> None:
    transport = httpx.MockTransport(lambda _: answer(409, "not_cancellable"))
    with Client("http://api", transport=transport) as client, pytest.raises(Conflict) as caught:
        client.cancel("some-id")
    assert (caught.value.status, caught.value.code) == (409, "not_cancellable")


def signed(body: bytes, *, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = int(time.time()) if at is None else at
    return signing.headers(key, webhook_id="msg_1", timestamp=stamp, body=body)


BODY = json.dumps({"type": "message.sent", "data": {"id": "x"}}).encode()


def test_a_callback_signed_by_postline_verifies() -> None:
    assert verify_callback(BODY, signed(BODY), SECRET)["type"] == "message.sent"


def test_a_callback_signed_by_a_standard_webhooks_library_verifies() -> None:
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("msg_2", now, BODY.decode())
    headers = {
        "Webhook-Id": "msg_2",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": f"v1,bm90IGl0 {signature}",  # a rotated-out key's signature first
    }
    assert verify_callback(BODY, headers, SECRET)["data"] == {"id": "x"}


@pytest.mark.parametrize(
    ("body", "signed_body", "skew", "secret", "error"),
    [
        pytest.param(BODY + b" ", BODY, 0, SECRET, BadSignature, id="tampered"),
        pytest.param(BODY, BODY, 0, "whsec_" + "A" * 44, BadSignature, id="other-secret"),
        pytest.param(BODY, BODY, -400, SECRET, StaleCallback, id="stale"),
        pytest.param(BODY, BODY, 400, SECRET, StaleCallback, id="future"),
        pytest.param(BODY, None, 0, SECRET, InvalidCallback, id="no-signature"),
        pytest.param(b"[1]", b"[1]", 0, SECRET, InvalidCallback, id="not-an-object"),
    ],
)  # fmt: skip
def test_untrustworthy_callbacks_are_refused(
    body: bytes, signed_body: bytes | None, skew: int, secret: str, error: type[Exception]
) -> None:
    # Signed when the test runs, not when it is collected: a long suite must
    # not turn a fresh signature stale.
    headers: dict[str, Any] = (
        {"webhook-id": "msg_1"}
        if signed_body is None
        else signed(signed_body, at=int(time.time()) + skew)
    )
    with pytest.raises(error):
        verify_callback(body, headers, secret)
