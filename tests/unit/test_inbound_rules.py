"""Inbound messages: reading Twilio's form, the keywords and what each changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.domain.inbound import (
    KEYWORDS,
    Action,
    InboundChannel,
    InboundError,
    effects,
    keyword_of,
    twilio_inbound,
)
from postline.domain.suppression import ANY_SENDER, Reason, Source, SuppressionChannel

US, OURS = "+15559876543", "+15551234567"


def form(**extra: Any) -> dict[str, str]:
    base = {"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "1" * 32, "From": US,
            "To": OURS, "Body": "Hello", "NumMedia": "0"}  # fmt: skip
    return {**base, **extra}


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("STOP", "STOP"), ("  stop \n", "STOP"), ("StopAll", "STOPALL"),
     ("unsubscribe", "UNSUBSCRIBE"), ("cancel", "CANCEL"), ("END", "END"), ("quit", "QUIT"),
     ("start", "START"),
     ("Unstop", "UNSTOP"), ("yes", "YES"), ("help", "HELP"), ("info", "INFO"),
     ("stop please", None), ("STOP.", None), ("", None), ("s t o p", None)],
)  # fmt: skip
def test_a_keyword_is_the_whole_trimmed_body_in_any_case(body: str, keyword: str | None) -> None:
    assert keyword_of(body) == keyword


@given(st.text(max_size=20))
def test_anything_else_is_no_keyword(body: str) -> None:
    found = keyword_of(body)
    assert found is None or found == body.strip().upper()


def test_a_plain_sms_is_read_with_e164_addresses_and_no_action() -> None:
    message = twilio_inbound(form())
    assert (message.channel, message.from_addr, message.to_addr) == (
        InboundChannel.SMS, US, OURS)  # fmt: skip
    assert (message.keyword, message.action, message.reply) == (None, Action.NONE, None)


def test_whatsapp_loses_its_prefix_and_media_make_an_mms() -> None:
    whatsapp = twilio_inbound(form(From=f"whatsapp:{US}", To=f"whatsapp:{OURS}"))
    assert (whatsapp.channel, whatsapp.from_addr, whatsapp.to_addr) == (
        InboundChannel.WHATSAPP, US, OURS)  # fmt: skip
    mms = twilio_inbound(
        form(
            NumMedia="2",
            MediaUrl0="https://a.example/1.png",
            MediaContentType0="image/png",
            MediaUrl1="https://a.example/2",
        )
    )
    assert mms.channel is InboundChannel.MMS
    assert [(m.url, m.content_type) for m in mms.media] == [
        ("https://a.example/1.png", "image/png"), ("https://a.example/2", None)]  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [{"MessageSid": ""}, {"MessageSid": "SM\x00x"}, {"MessageSid": "x" * 65}, {"From": ""},
     {"From": "12345"}, {"To": "+1"}, {"From": f"whatsapp:{US}"}, {"Body": "a\x00b"},
     {"Body": "x" * 4097}, {"NumMedia": "one"}, {"NumMedia": "11"}, {"NumMedia": "-1"},
     {"NumMedia": "1"}, {"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"},
     {"NumMedia": "1", "MediaUrl0": "https://a.example/\x00"}, {"NumMedia": "\u0661"}],
)  # fmt: skip
def test_a_bad_form_is_refused_saying_which_field(bad: dict[str, str]) -> None:
    with pytest.raises(InboundError):
        twilio_inbound(form(**bad))


def test_stop_suppresses_that_sender_and_stopall_every_sender() -> None:
    stop = effects(twilio_inbound(form(Body="stop")))
    assert stop.suppress is not None and not stop.lift_senders
    assert (stop.suppress.channel, stop.suppress.recipient, stop.suppress.sender) == (
        SuppressionChannel.SMS, US, OURS)  # fmt: skip
    assert (stop.suppress.reason, stop.suppress.source) == (Reason.OPT_OUT, Source.INBOUND)
    every = effects(
        twilio_inbound(form(Body="STOPALL", From=f"whatsapp:{US}", To=f"whatsapp:{OURS}"))
    )
    assert every.suppress is not None
    assert (every.suppress.channel, every.suppress.sender) == (
        SuppressionChannel.WHATSAPP, ANY_SENDER)  # fmt: skip


def test_start_lifts_that_senders_and_the_every_sender_opt_out() -> None:
    lifted = effects(twilio_inbound(form(Body="Start")))
    assert lifted.suppress is None
    assert set(lifted.lift_senders) == {OURS, ANY_SENDER}


def test_help_carries_the_configured_reply_only_when_there_is_one() -> None:
    assert twilio_inbound(form(Body="help"), help_reply="Call 555").reply == "Call 555"
    assert twilio_inbound(form(Body="help"), help_reply=None).reply is None
    assert twilio_inbound(form(Body="hello"), help_reply="Call 555").reply is None
    assert effects(twilio_inbound(form(Body="help"))) == effects(twilio_inbound(form()))


def test_every_keyword_has_an_action() -> None:
    assert set(KEYWORDS.values()) == set(Action) - {Action.NONE}
