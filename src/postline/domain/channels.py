"""Channels, the providers that carry them and their queue names (SPEC 4)."""

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

QUEUE_PREFIX = "message_queue:"
RETRY_QUEUE = QUEUE_PREFIX + "retry"
DEAD_QUEUE = QUEUE_PREFIX + "dead"
CONSUMER_GROUP = "workers"


def stream_of(channel: Channel) -> str:
    return QUEUE_PREFIX + channel.value


CHANNEL_STREAMS: tuple[str, ...] = tuple(stream_of(c) for c in Channel)
