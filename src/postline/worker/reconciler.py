"""PostgreSQL is the truth: put back into Redis whatever Redis lost.

Every open message (`pending`, `sending`, `retrying`, `scheduled`) that has
been quiet for a while is checked against Redis, in acceptance order, a page
at a time:
- pending, sending, retrying: it must be in its key's FIFO; if it is not
  (the API died between commit and enqueue, Redis lost its data, someone ran
  FLUSHALL) it is appended, and queued if that makes it the head. A message
  already in its FIFO is left alone, so nothing is ever queued twice;
- scheduled: it must be in the delay set (added only if absent).

Walking in acceptance order means FIFOs rebuilt after a total loss keep the
order the messages were accepted in. Any number of workers run this loop;
a short Redis lock lets one of them do each pass.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from postline.domain.channels import Channel
from postline.domain.statuses import Status
from postline.queue.streams import Enqueue, RedisQueue
from postline.store.messages import MessageStore

log = logging.getLogger("postline.reconciler")

LOCK_KEY = "postline:reconciler"
PAGE = 1000


class Reconciler:
    """One pass per `tick`, bounded by `max_per_pass` messages."""

    def __init__(
        self,
        *,
        store: MessageStore,
        queue: RedisQueue,
        owner: str,
        interval: float,
        quiet_for: float,
        max_per_pass: int = 20_000,
    ) -> None:
        self._store = store
        self._queue = queue
        self._owner = owner
        self._interval = interval
        self._quiet_for = quiet_for
        self._max = max_per_pass
        self._after = 0
        self._passes = 0

    async def tick(self) -> int:
        """Runs a pass if no other worker holds the lock; returns messages re-queued."""
        ttl_ms = max(int(self._interval * 1000) - 50, 100)
        if not await self._queue.client.set(LOCK_KEY, self._owner, nx=True, px=ttl_ms):
            return 0
        self._passes += 1
        if self._passes % 60 == 1:
            purged = await self._store.purge_idempotency_keys()
            if purged:
                log.info("purged %d idempotency keys older than 24h", purged)
        return await self._pass()

    async def _pass(self) -> int:
        seen = requeued = 0
        while seen < self._max:
            rows = await self._store.open_page(
                after_seq=self._after, limit=PAGE, quiet_for=self._quiet_for
            )
            if not rows:
                self._after = 0  # reached the end: the next pass starts over
                break
            self._after = rows[-1]["seq"]
            seen += len(rows)
            fifo, later = [], []
            for row in rows:
                item = Enqueue(str(row["id"]), Channel(row["type"]), row["ordering_key"])
                if row["status"] == Status.SCHEDULED:
                    later.append((item, (row["send_at"] or datetime.now(UTC)).timestamp()))
                else:
                    fifo.append(item)
            await self._queue.schedule_many(later, retry=False, keep=True)
            requeued += await self._queue.push(fifo, check=True)
        if requeued:
            log.warning("re-queued %d messages that Redis no longer held", requeued)
        return requeued
