"""Twilio CreateMessage rules: number formats, validation order, segments, auth."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from postline.simulator.config import SimulatorConfig
from postline.simulator.scripts import ScriptItem
from postline.simulator.twilio import (
    auth_ok,
    error_for,
    is_valid_from,
    is_valid_to,
    message_resource,
    num_segments,
    parse_form,
    validate_create,
)

SID = "AC" + "0" * 32


@pytest.mark.parametrize(
    ("to", "valid"),
    [
        ("+15551234567", True),
        ("+12345678", True),  # 8 digits, the shortest allowed
        ("+123456789012345", True),  # 15 digits, the longest
        ("+1234567", False),
        ("+1234567890123456", False),
        ("+05551234567", False),
        ("15551234567", False),
        ("+1 555 123 4567", False),
        ("whatsapp:+15551234567", True),
        ("whatsapp:15551234567", False),
        ("", False),
    ],
)
def test_to_is_checked_as_e164_by_form(to: str, valid: bool) -> None:
    assert is_valid_to(to) is valid


@pytest.mark.parametrize(
    ("sender", "valid"),
    [
        ("+15551234567", True),
        ("12345", True),  # short code
        ("Postline", True),  # alphanumeric sender ID
        ("Postline Ltd1", False),  # 13 characters
        ("123456789", False),  # digits only: neither short code nor E.164
        ("whatsapp:+15551234567", True),
        ("whatsapp:Postline", False),
    ],
)
def test_from_accepts_numbers_short_codes_and_sender_ids(sender: str, valid: bool) -> None:
    assert is_valid_from(sender) is valid


def _validate(**overrides: Any) -> int | None:
    fields: dict[str, Any] = {
        "to": "+15551234567",
        "sender": "+15557654321",
        "body": "hi",
        "media_urls": [],
        "status_callback": None,
        "messaging_service_sid": None,
    }
    fields.update(overrides)
    error = validate_create(**fields)
    return None if error is None else error.code


def test_valid_requests_pass() -> None:
    assert _validate() is None
    assert _validate(sender=None, messaging_service_sid="MG" + "1" * 32) is None
    assert _validate(body=None, media_urls=["https://cdn.example.com/a.png"]) is None
    assert _validate(status_callback="https://example.com/status?x=1") is None
    assert _validate(body="x" * 1600) is None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"to": None, "sender": None, "body": None}, 21604),  # To is checked first
        ({"sender": None, "body": None}, 21603),
        ({"body": None}, 21602),
        ({"body": ""}, 21602),
        ({"to": "555-1234"}, 21211),
        ({"sender": "+0"}, 21212),
        ({"to": "whatsapp:+15551234567"}, 21910),
        ({"sender": "whatsapp:+15557654321"}, 21910),
        ({"body": "x" * 1601}, 21617),
        ({"media_urls": ["ftp://example.com/a.png"]}, 21620),
        ({"status_callback": "http://bad_host.example.com/x"}, 21609),
        ({"status_callback": "/relative"}, 21609),
    ],
)
def test_invalid_requests_get_twilio_codes(overrides: dict[str, Any], code: int) -> None:
    assert _validate(**overrides) == code


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # extension characters cost two septets
        ("{" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM basic set
        ("ç" * 70, 1),  # ç is not: UCS-2 from here
        ("ç" * 71, 2),
        ("👍" * 35, 1),  # a surrogate pair is two UCS-2 units
        ("👍" * 36, 2),
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(body: str, segments: int) -> None:
    assert num_segments(body) == segments


def test_resource_has_twilio_types_and_uris() -> None:
    resource = message_resource(
        sid="SM" + "a" * 32,
        account_sid=SID,
        to="whatsapp:+15551234567",
        sender="whatsapp:+15557654321",
        body="x" * 500,
        media_count=0,
        messaging_service_sid=None,
    )

    assert resource["num_segments"] == "1"  # WhatsApp is never segmented
    assert resource["num_media"] == "0"
    assert resource["status"] == "queued"
    assert resource["date_created"].endswith(" +0000")
    assert resource["subresource_uris"] == {
        "media": f"/2010-04-01/Accounts/{SID}/Messages/SM{'a' * 32}/Media.json"
    }


def test_scripted_faults_fill_in_twilio_defaults() -> None:
    assert orjson.loads(error_for(ScriptItem(503)).body()) == {
        "code": 20503,
        "message": "Service Unavailable",
        "more_info": "https://www.twilio.com/docs/errors/20503",
        "status": 503,
    }
    custom = error_for(ScriptItem(400, code=21610, message="Unsubscribed"))
    assert (custom.status, custom.code, custom.message) == (400, 21610, "Unsubscribed")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_when_configured() -> None:
    config = SimulatorConfig(twilio_account_sid=SID, twilio_auth_token="tok")

    assert auth_ok(config, _basic(SID, "tok"), SID)
    assert not auth_ok(config, _basic(SID, "nope"), SID)
    assert not auth_ok(config, _basic(SID, "tok"), "AC" + "9" * 32)  # other account's path
    assert not auth_ok(config, None, SID)
    assert not auth_ok(config, "Bearer tok", SID)
    assert not auth_ok(config, "Basic %%%", SID)


def test_auth_is_open_without_credentials() -> None:
    assert auth_ok(SimulatorConfig(), None, SID)


def test_form_keeps_repeated_fields_as_lists() -> None:
    form = parse_form(b"To=%2B15551234567&MediaUrl=https%3A%2F%2Fa&MediaUrl=https%3A%2F%2Fb&Body=")

    assert form == {"To": "+15551234567", "MediaUrl": ["https://a", "https://b"], "Body": ""}
