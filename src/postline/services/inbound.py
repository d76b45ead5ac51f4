"""Receiving an inbound message: judge its keyword, store it with its effects, tell the client.

The webhook route hands over Twilio's form once its signature is checked;
`InboundIntake.receive` reads it (`domain/inbound.py`), stamps it, and has
the store keep it, apply its STOP/START and queue its `message.received`
callback in one transaction. A replay of a stored `MessageSid` returns the
first one as stored, so the route answers it as it answered the first
(a HELP gets the same reply) and nothing happens twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from postline.callbacks.dispatcher import received_body
from postline.domain.inbound import effects, twilio_inbound
from postline.services.ports import InboundRecords
from postline.store.inbound import Recorded

log = logging.getLogger("postline.inbound")


class InboundIntake:
    """Turns verified inbound webhooks into stored inbound messages."""

    def __init__(
        self,
        records: InboundRecords,
        *,
        help_reply: str | None = None,
        callback_url: str | None = None,
    ) -> None:
        self._records = records
        self._help_reply = help_reply
        self._callback_url = callback_url

    async def receive(self, form: Mapping[str, str]) -> Recorded:
        """The inbound message as stored, and whether this call stored it (not a retry).

        `InboundError` when the form is not an inbound message.
        """
        parsed = twilio_inbound(form, help_reply=self._help_reply)
        message = dataclasses.replace(parsed, received_at=datetime.now(UTC))
        callback = None
        if self._callback_url:
            callback = (self._callback_url, received_body(message))
        recorded = await self._records.record(message, effects=effects(message), callback=callback)
        if recorded.new:
            log.info(
                "inbound message stored sid=%s channel=%s action=%s",
                message.provider_message_id,
                message.channel.value,
                message.action.value,
            )
        return recorded
