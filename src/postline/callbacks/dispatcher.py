"""Delivers client callbacks from the outbox, apart from message delivery.

Runs in every worker with its own HTTP session and its own concurrency, so
a slow or dead client endpoint never takes a slot from a message send. A
2xx answer ends a callback; anything else, or no answer in 10 s, is retried
with exponential backoff (capped at an hour) for 25 hours, then given up.

The client chose the URL, so the session trusts it no further than it must:
it connects only to public addresses (`targets.public_only_socket`, unless
CALLBACK_ALLOW_PRIVATE_NETWORKS), follows no redirect (a 3xx is not a 2xx,
so it is retried like any other answer), reads at most `MAX_ANSWER_BYTES`
of an answer and never decompresses one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson

from postline.callbacks import signing
from postline.callbacks.targets import public_only_socket
from postline.domain.inbound import InboundMessage, public_inbound
from postline.domain.message import public_view, rfc3339
from postline.domain.retry import exponential_seconds
from postline.store.callbacks import CallbackStore, DueCallback

log = logging.getLogger("postline.callbacks")

ANSWER_TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 60.0
KEEP_TRYING = timedelta(hours=25)
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 3600.0
#: What is read of an answer: enough to reuse the connection after a small
#: body; a longer one is left unread and its connection closed.
MAX_ANSWER_BYTES = 64 * 1024


def backoff(tries: int, first: float = FIRST_BACKOFF_SECONDS) -> float:
    return exponential_seconds(tries, base=first, cap=MAX_BACKOFF_SECONDS)


def event_body(due: DueCallback) -> bytes:
    """What the client receives; fixed at the first attempt, reused on retries."""
    if due.message is None or due.event_status is None:
        # An inbound message's row is written with its body, so this cannot be one.
        raise ValueError(f"callback {due.id} has neither a body nor a message")
    return orjson.dumps(
        {
            "type": f"message.{due.event_status.value}",
            "timestamp": rfc3339(due.event_at),
            "data": public_view(due.message),
        }
    )


RECEIVED_EVENT = "message.received"


def received_body(message: InboundMessage) -> bytes:
    """The `message.received` callback of an inbound message (written once, with it)."""
    return orjson.dumps(
        {
            "type": RECEIVED_EVENT,
            "timestamp": rfc3339(message.received_at),
            "data": public_inbound(message),
        }
    )


class CallbackDispatcher:
    """Leases due callbacks and POSTs them, `concurrency` at a time."""

    def __init__(
        self,
        *,
        store: CallbackStore,
        key: bytes,
        concurrency: int = 32,
        batch: int = 100,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        allow_private_networks: bool = False,
    ) -> None:
        self._first_backoff = first_backoff
        self._allow_private = allow_private_networks
        self._store = store
        self._key = key
        self._slots = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._session: aiohttp.ClientSession | None = None

    async def tick(self) -> int:
        if self._session is None:
            guard = None if self._allow_private else public_only_socket
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(limit=64, socket_factory=guard),
                auto_decompress=False,
            )
        due = await self._store.lease(limit=self._batch, lease_seconds=LEASE_SECONDS)
        await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, due: DueCallback) -> None:
        body = due.payload if due.payload is not None else event_body(due)
        headers = signing.headers(
            self._key, webhook_id=str(due.id), timestamp=int(time.time()), body=body
        )
        assert self._session is not None
        error = await self._post(due.url, body, headers)
        if error is None:
            await self._store.delivered(due.id, body)
            return
        retry_at: datetime | None = datetime.now(UTC) + timedelta(
            seconds=backoff(due.tries, self._first_backoff)
        )
        if retry_at is not None and retry_at - due.event_at > KEEP_TRYING:
            log.warning("callback %s given up after %d tries", due.id, due.tries)
            retry_at = None
        await self._store.failed(due.id, body, error=error, next_attempt_at=retry_at)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """None on a 2xx answer, else what went wrong."""
        assert self._session is not None
        async with self._slots:
            try:
                async with self._session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as answer:
                    await _read_some(answer.content, MAX_ANSWER_BYTES)
                    return None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                return f"{type(exc).__name__}: {exc}"[:500]


async def _read_some(stream: aiohttp.StreamReader, limit: int) -> None:
    """Reads the answer's body up to its end or `limit` bytes, whichever comes first."""
    while limit > 0 and (chunk := await stream.read(limit)):
        limit -= len(chunk)
