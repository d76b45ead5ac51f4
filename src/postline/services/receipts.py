"""Receipt intake: the receipts of concurrent webhook requests, stored a batch at a time.

A group commit turns the receipts of concurrent requests into one statement,
and a settler applies receipts which arrived before their message was
recorded as `sent` (`store/receipts.py`). Built in the API's lifespan beside
the acceptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from postline.batching import GroupCommit
from postline.domain.receipts import Receipt
from postline.domain.statuses import Status
from postline.errors import DatabaseUnavailable
from postline.queue.streams import RedisQueue
from postline.store.availability import DB_UNAVAILABLE
from postline.store.receipts import Applied, ApplyResult, ReceiptOutcome, ReceiptStore

log = logging.getLogger("postline.receipts")

#: How often each API process applies receipts that arrived before `sent`.
SETTLE_INTERVAL_SECONDS = 1.0


class ReceiptIntake:
    """Stores the receipts of concurrent webhook requests a batch at a time.

    Twilio posts one status per request; under load many arrive together and
    a group commit turns them into one statement (SendGrid's arrays ride the
    same path). The intake also runs the settler for receipts that arrived
    before their message was recorded as `sent`.
    """

    def __init__(
        self,
        store: ReceiptStore,
        *,
        queue: RedisQueue | None = None,
        settle_every: float = SETTLE_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self._queue = queue
        self._commits: GroupCommit[list[Receipt]] = GroupCommit(
            self._flush, max_batch=100, parallel=2
        )
        self._settle_every = settle_every
        self._settler: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._commits.start()
        self._settler = asyncio.create_task(self._settle_forever(), name="receipt-settler")

    async def close(self) -> None:
        await self._commits.close()
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler

    async def submit(self, provider: str, receipts: list[Receipt]) -> None:
        """Returns once `receipts` are stored (applied, parked or found irrelevant);
        raises DatabaseUnavailable if PostgreSQL cannot be reached."""
        if not receipts:
            return
        try:
            await self._commits.submit(receipts)
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable, %s receipts not stored: %s", provider, exc)
            raise DatabaseUnavailable("the database is unavailable") from exc

    async def _flush(self, batch: Sequence[list[Receipt]]) -> None:
        result = await self.store.apply([r for receipts in batch for r in receipts])
        _log(result)
        await self._dead_letter(result.applied)

    async def _dead_letter(self, applied: Sequence[Applied]) -> None:
        """A message a receipt failed gets its dead letter too (SPEC 3.1), best effort."""
        failed = [a for a in applied if a.status == Status.FAILED]
        if not failed or self._queue is None:
            return
        try:
            await self._queue.dead_letter(
                [{"id": str(a.message_id), "source": "receipt"} for a in failed]
            )
        except (RedisError, OSError) as exc:
            log.warning("dead letters of %d receipt failures not written: %s", len(failed), exc)

    async def _settle_forever(self) -> None:
        while True:
            try:
                settled = await self.store.settle_parked()
            except DB_UNAVAILABLE as exc:
                log.warning("applying parked receipts failed, will retry: %s", exc)
            except Exception:  # a bug must not stop the settler; the next pass tries again
                log.exception("applying parked receipts crashed")
            else:
                await self._dead_letter(settled.applied)
                if settled.applied:
                    log.info("applied %d receipts that arrived before sent", len(settled.applied))
                if settled.expired:
                    log.warning(
                        "dropped %d receipts whose message never showed up", settled.expired
                    )
            await asyncio.sleep(self._settle_every)


def _log(result: ApplyResult) -> None:
    for receipt in result.unknown:
        log.info(
            "%s receipt for an unknown message: id=%s provider_id=%s status=%s",
            receipt.provider,
            receipt.message_id,
            receipt.provider_message_id,
            receipt.status,
        )
    for receipt in result.parked:
        log.info(
            "%s receipt kept until its message is recorded as sent: id=%s provider_id=%s",
            receipt.provider,
            receipt.message_id,
            receipt.provider_message_id,
        )
    log.debug("receipts: %s", ", ".join(f"{result.count(o)} {o.value}" for o in ReceiptOutcome))
