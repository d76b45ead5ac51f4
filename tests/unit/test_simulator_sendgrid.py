"""SendGrid Mail Send rules and the inspection summary of a mail body."""

from __future__ import annotations

import base64
from typing import Any

from postline.simulator.config import SimulatorConfig
from postline.simulator.sendgrid import auth_error, summarize, validate_mail


def _mail(**overrides: Any) -> dict[str, Any]:
    mail: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "ana@example.com", "name": "Ana"}]}],
        "from": {"email": "bookings@example.com"},
        "subject": "Payment verified",
        "content": [
            {"type": "text/plain", "value": "Verified."},
            {"type": "text/html", "value": "<p>Verified.</p>"},
        ],
    }
    mail.update(overrides)
    return mail


def _fields(mail: object) -> list[str | None]:
    return [error["field"] for error in validate_mail(mail)]


def test_a_complete_mail_is_valid() -> None:
    assert validate_mail(_mail()) == []


def test_template_mail_needs_neither_subject_nor_content() -> None:
    mail = _mail(template_id="d-123")
    del mail["subject"], mail["content"]

    assert validate_mail(mail) == []


def test_subject_may_come_from_every_personalization() -> None:
    mail = _mail(personalizations=[{"to": [{"email": "a@example.com"}], "subject": "Hi"}])
    del mail["subject"]

    assert validate_mail(mail) == []


def test_an_empty_object_reports_every_missing_part() -> None:
    assert _fields({}) == ["from.email", "personalizations", "subject", "content"]


def test_a_non_object_body_is_a_bad_request() -> None:
    assert validate_mail(None) == [{"message": "Bad Request", "field": None, "help": None}]


def test_recipients_must_be_addresses() -> None:
    mail = _mail(
        personalizations=[
            {"to": []},
            {"to": [{"email": "ok@example.com"}, {"email": "nope"}, {"name": "no email"}]},
        ]
    )

    assert _fields(mail) == [
        "personalizations.0.to",
        "personalizations.1.to.1.email",
        "personalizations.1.to.2.email",
    ]


def test_content_blocks_need_type_and_value_and_plain_text_first() -> None:
    assert _fields(_mail(content=[])) == ["content"]
    assert _fields(_mail(content=[{"type": "", "value": "x"}, {"type": "text/html"}])) == [
        "content.0.type",
        "content.1.value",
    ]
    html_first = [
        {"type": "text/html", "value": "<p>x</p>"},
        {"type": "text/plain", "value": "x"},
    ]
    assert _fields(_mail(content=html_first)) == ["content"]


def test_attachments_need_base64_content_and_a_filename() -> None:
    good = {"content": base64.b64encode(b"pdf").decode(), "filename": "a.pdf"}
    attachments = [good, {"content": "***", "filename": "b.pdf"}, {"filename": ""}, "junk"]

    assert _fields(_mail(attachments=attachments)) == [
        "attachments.1.content",
        "attachments.2.content",
        "attachments.2.filename",
        "attachments.3.content",
        "attachments.3.filename",
    ]


def test_summary_picks_the_first_recipient_and_merges_custom_args() -> None:
    mail = _mail(
        custom_args={"a": "1", "b": "1"},
        attachments=[{"content": "eA==", "filename": "x.txt"}],
    )
    mail["personalizations"][0]["custom_args"] = {"b": "2"}

    assert summarize(mail) == {
        "to": "ana@example.com",
        "from": "bookings@example.com",
        "subject": "Payment verified",
        "html": "<p>Verified.</p>",
        "text": "Verified.",
        "attachments": [{"content": "eA==", "filename": "x.txt"}],
        "custom_args": {"a": "1", "b": "2"},
    }


def test_summary_of_garbage_is_empty() -> None:
    assert summarize([1, 2])["to"] is None
    assert summarize({"personalizations": [{"to": "x"}]})["to"] is None


def test_bearer_key_check() -> None:
    config = SimulatorConfig(sendgrid_api_key="SG.key")

    assert auth_error(config, "Bearer SG.key") is None
    assert auth_error(config, None) == "authorization required"
    assert auth_error(config, "Bearer SG.other") is not None
    assert auth_error(config, "Basic SG.key") is not None
    assert auth_error(SimulatorConfig(), None) is None
