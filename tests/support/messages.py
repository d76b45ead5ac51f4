"""Messages for tests that talk to the store or the acceptor directly."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from postline.domain.channels import Channel
from postline.domain.message import Message
from postline.domain.statuses import Status


def new_message(to: str = "+15559876543", **fields: Any) -> Message:
    """A pending SMS to `to` (its ordering key too), as the API would store it."""
    now = datetime.now(UTC)
    base = Message(
        id=uuid.uuid4(), type=Channel.SMS, status=Status.PENDING, from_addr="+15551234567",
        to_addr=to, body="x", ordering_key=to, created_at=now, updated_at=now,
    )  # fmt: skip
    return dataclasses.replace(base, **fields)
