"""Parts for tests of route picking: a provider never called, a claimed SMS, two routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from postline.domain.channels import Channel
from postline.domain.message import Message
from postline.domain.routes import TWILIO, TWILIO_BACKUP
from postline.domain.statuses import Status
from postline.providers.base import Route, SendResult


class Nowhere:
    """A provider that is never called: these tests only pick routes."""

    name = "twilio"

    async def send(self, message: Message) -> SendResult:  # pragma: no cover
        raise AssertionError("not called")


def claimed_sms(*, attempts: int = 1, route: str | None = None) -> Message:
    """An SMS as a claim hands it over: `attempts` counts this one, `route` the last one's."""
    now = datetime.now(UTC)
    return Message(
        id=uuid.uuid4(), type=Channel.SMS, status=Status.SENDING, from_addr="+15550000000",
        to_addr="+15550000001", ordering_key="+15550000001", attempts=attempts, route=route,
        created_at=now, updated_at=now,
    )  # fmt: skip


PRIMARY_ACCOUNT = "twilio:AC-primary"
BACKUP_ACCOUNT = "twilio:AC-backup"


def twilio_routes() -> dict[Channel, list[Route]]:
    """SMS through the primary account, then the backup one."""
    return {
        Channel.SMS: [
            Route(TWILIO, Nowhere(), PRIMARY_ACCOUNT),
            Route(TWILIO_BACKUP, Nowhere(), BACKUP_ACCOUNT),
        ]
    }
