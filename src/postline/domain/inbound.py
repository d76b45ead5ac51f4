"""Inbound messages: what a recipient sent to one of Postline's numbers, and what it asks for.

Pure, no I/O. `twilio_inbound` reads Twilio's inbound message webhook (a
form) into an `InboundMessage`, or raises `InboundError` saying which field
is wrong; the route answers that with `400`, so a bad form never reaches
the database. Addresses are kept in E.164: WhatsApp's `whatsapp:` prefix
becomes the channel instead.

`keyword_of` reads the whole trimmed body, case-insensitively, against
Twilio's standard opt-out keywords, and `effects` says what each asks for:

- STOP, UNSUBSCRIBE, CANCEL, END, QUIT: that recipient, from that number
  (the inbound `To`), is suppressed (`opt_out`), as carriers apply STOP.
- STOPALL: the recipient is suppressed for every sender: the word asks
  for all of them.
- START, UNSTOP, YES: the recipient's opt-outs are lifted, both that
  number's and an every-sender one, since the recipient made them and
  asks to hear again. Suppressions for other reasons (a manual one, a
  bounce) stay: the recipient did not make those.
- HELP, INFO: answered with the configured reply (INBOUND_HELP_REPLY).

SMS and MMS share a number, so both suppress the `sms` channel.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from postline.domain import addresses
from postline.domain.message import rfc3339
from postline.domain.suppression import (
    ANY_SENDER,
    Reason,
    Source,
    Suppression,
    SuppressionChannel,
)

#: Twilio sends at most 10 media items with a message.
MAX_MEDIA = 10
MAX_BODY_CHARS = 4096  # WhatsApp's limit; an SMS body is at most 1600
MAX_SID_CHARS = 64
MAX_URL_CHARS = 2048
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
# PostgreSQL text cannot hold NUL; no URL or content type holds a control character.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


class InboundChannel(StrEnum):
    SMS = "sms"
    MMS = "mms"
    WHATSAPP = "whatsapp"


class Action(StrEnum):
    """What Postline did about an inbound message's keyword."""

    NONE = "none"
    OPT_OUT = "opt_out"  # that sender
    OPT_OUT_ALL = "opt_out_all"  # every sender
    OPT_IN = "opt_in"
    HELP = "help"


KEYWORDS: dict[str, Action] = {
    **dict.fromkeys(("STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), Action.OPT_OUT),
    "STOPALL": Action.OPT_OUT_ALL,
    **dict.fromkeys(("START", "UNSTOP", "YES"), Action.OPT_IN),
    **dict.fromkeys(("HELP", "INFO"), Action.HELP),
}


class InboundError(ValueError):
    """The webhook's form is not an inbound message; the text says which field."""


@dataclass(frozen=True, slots=True)
class Media:
    url: str
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """One inbound message, as stored and shown (`public_inbound`)."""

    provider_message_id: str
    channel: InboundChannel
    from_addr: str
    to_addr: str
    body: str
    media: tuple[Media, ...] = ()
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    received_at: datetime | None = None
    keyword: str | None = None
    action: Action = Action.NONE
    reply: str | None = None


def keyword_of(body: str) -> str | None:
    """The keyword the whole trimmed body is (upper case), or None."""
    word = body.strip().upper()
    return word if word in KEYWORDS else None


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None or not value.strip():
        raise InboundError(f"{name} is missing")
    return value.strip()


def _address(form: Mapping[str, str], name: str) -> tuple[str, bool]:
    """(E.164 number, whether it had the `whatsapp:` prefix)."""
    value = _field(form, name)
    try:
        return addresses.whatsapp(value), value.startswith(addresses.WHATSAPP_PREFIX)
    except addresses.AddressError as exc:
        raise InboundError(f"{name} {exc}") from exc


def _media(form: Mapping[str, str]) -> tuple[Media, ...]:
    raw = form.get("NumMedia", "0").strip() or "0"
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_MEDIA:
        raise InboundError(f"NumMedia must be a whole number from 0 to {MAX_MEDIA}")
    found = []
    for index in range(int(raw)):
        url = _field(form, f"MediaUrl{index}")
        if not url.startswith(("https://", "http://")) or len(url) > MAX_URL_CHARS:
            raise InboundError(f"MediaUrl{index} must be an http(s) URL")
        kind = form.get(f"MediaContentType{index}", "").strip() or None
        if _CONTROLS.search(url) or (kind is not None and _CONTROLS.search(kind)):
            raise InboundError(f"MediaUrl{index} holds a control character")
        found.append(Media(url=url, content_type=kind[:255] if kind else None))
    return tuple(found)


def twilio_inbound(form: Mapping[str, str], *, help_reply: str | None = None) -> InboundMessage:
    """The inbound message in Twilio's webhook form, its keyword judged; `InboundError` if bad."""
    sid = _field(form, "MessageSid")
    if not _SID.fullmatch(sid):
        raise InboundError(f"MessageSid must be 2 to {MAX_SID_CHARS} letters and digits")
    sender, sender_whatsapp = _address(form, "From")
    to, to_whatsapp = _address(form, "To")
    if sender_whatsapp != to_whatsapp:
        raise InboundError("From and To must both be whatsapp: addresses, or neither")
    body = form.get("Body", "")
    if "\x00" in body:
        raise InboundError("Body must not contain NUL")
    if len(body) > MAX_BODY_CHARS:
        raise InboundError(f"Body is longer than {MAX_BODY_CHARS} characters")
    media = _media(form)
    if sender_whatsapp:
        channel = InboundChannel.WHATSAPP
    else:
        channel = InboundChannel.MMS if media else InboundChannel.SMS
    keyword = keyword_of(body)
    action = KEYWORDS[keyword] if keyword else Action.NONE
    reply = (help_reply or None) if action is Action.HELP else None
    return InboundMessage(
        provider_message_id=sid,
        channel=channel,
        from_addr=sender,
        to_addr=to,
        body=body,
        media=media,
        keyword=keyword,
        action=action,
        reply=reply,
    )


def suppression_channel(channel: InboundChannel) -> SuppressionChannel:
    return (
        SuppressionChannel.WHATSAPP
        if channel is InboundChannel.WHATSAPP
        else SuppressionChannel.SMS
    )


@dataclass(frozen=True, slots=True)
class Effects:
    """What an inbound message changes: a suppression to add, the senders whose opt-out lifts."""

    suppress: Suppression | None = None
    lift_senders: tuple[str, ...] = ()


def effects(message: InboundMessage) -> Effects:
    """The suppression changes `message`'s keyword asks for (module docstring)."""
    channel = suppression_channel(message.channel)
    if message.action in (Action.OPT_OUT, Action.OPT_OUT_ALL):
        everyone = message.action is Action.OPT_OUT_ALL
        return Effects(
            suppress=Suppression(
                channel=channel,
                recipient=message.from_addr,
                sender=ANY_SENDER if everyone else message.to_addr,
                reason=Reason.OPT_OUT,
                source=Source.INBOUND,
            )
        )
    if message.action is Action.OPT_IN:
        return Effects(lift_senders=(message.to_addr, ANY_SENDER))
    return Effects()


def public_inbound(message: InboundMessage) -> dict[str, Any]:
    """The one JSON shape of an inbound message: the list's items and the callback's `data`."""
    return {
        "id": str(message.id),
        "provider_message_id": message.provider_message_id,
        "channel": message.channel.value,
        "from": message.from_addr,
        "to": message.to_addr,
        "body": message.body,
        "media": [{"url": m.url, "content_type": m.content_type} for m in message.media],
        "keyword": message.keyword,
        "action": message.action.value,
        "reply": message.reply,
        "received_at": rfc3339(message.received_at),
    }
