"""What both provider endpoints share: their state, receipts, and in-flight count."""

from __future__ import annotations

from aiohttp import web

from postline.simulator.receipts import ReceiptSender
from postline.simulator.state import SimulatorState


class ProviderEndpoint:
    """An aiohttp handler bound to the simulator state; subclasses answer."""

    def __init__(self, state: SimulatorState, receipts: ReceiptSender | None = None) -> None:
        self._state = state
        self._receipts = receipts

    async def handle(self, request: web.Request) -> web.Response:
        # Counting requests in flight shows the concurrency a worker reaches.
        self._state.enter()
        try:
            return await self._respond(request)
        finally:
            self._state.leave()

    async def _respond(self, request: web.Request) -> web.Response:
        raise NotImplementedError
