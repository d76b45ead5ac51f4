"""Channels and the providers that carry them (their queues: `postline.queue.keys`)."""

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


PROVIDER_OF: dict[Channel, Provider] = {
    Channel.SMS: Provider.TWILIO,
    Channel.MMS: Provider.TWILIO,
    Channel.WHATSAPP: Provider.TWILIO,
    Channel.EMAIL: Provider.SENDGRID,
}
