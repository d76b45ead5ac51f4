"""Channels and the providers that carry them (their queues: `postline.queue.keys`;
which provider accounts carry each channel: `postline.domain.routes`)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    MMS = "mms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"


class Provider(StrEnum):
    TWILIO = "twilio"
    SENDGRID = "sendgrid"


#: The provider of each channel, whichever of its accounts (routes) sends it.
PROVIDER_OF: dict[Channel, Provider] = {
    Channel.SMS: Provider.TWILIO,
    Channel.MMS: Provider.TWILIO,
    Channel.WHATSAPP: Provider.TWILIO,
    Channel.EMAIL: Provider.SENDGRID,
}
