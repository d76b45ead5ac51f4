"""What both provider endpoints share: their state, receipts, in-flight count, call record.

Every provider call ends with exactly one record: the handler records what
it answered (`_record`), and a call cancelled before that (the client went
away; the app runs with handler cancellation) is recorded here as
`client_gone`, with whatever the handler had parsed of it by then.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from postline.simulator import faults
from postline.simulator.receipts import ReceiptSender
from postline.simulator.state import SimulatorState


@dataclass
class Call:
    """One provider call being handled: when it arrived and what is known of it."""

    provider: str
    received_at: float = field(default_factory=time.time)
    fields: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False


class ProviderEndpoint:
    """An aiohttp handler bound to the simulator state; subclasses answer."""

    provider = ""

    def __init__(self, state: SimulatorState, receipts: ReceiptSender | None = None) -> None:
        self._state = state
        self._receipts = receipts

    async def handle(self, request: web.Request) -> web.Response:
        call = Call(self.provider)
        # Counting requests in flight shows the concurrency a worker reaches.
        self._state.enter()
        try:
            return await self._respond(request, call)
        except asyncio.CancelledError:
            if not call.recorded:
                self._record(call, status=None, outcome=faults.CLIENT_GONE)
            raise
        finally:
            self._state.leave()

    def _record(self, call: Call, **answer: Any) -> None:
        """Record the call once, with its parsed fields and how it was answered."""
        call.recorded = True
        self._state.record(
            {
                "seq": 0,
                "provider": call.provider,
                "received_at": call.received_at,
                "to": None,
                "body": None,
                "provider_message_id": None,
                "error_code": None,
                **call.fields,
                **answer,
            }
        )

    async def _respond(self, request: web.Request, call: Call) -> web.Response:
        raise NotImplementedError
