"""PostgreSQL is the truth: make sure every open key can make progress.

Redis may lose, duplicate or reorder what it holds (a restart that lost the
last second of its AOF, a FLUSHALL, a failed push while it was down). Order
does not depend on it (the claim checks PostgreSQL), but progress does: a
key moves only when its first open message (its head) reaches a worker.

Each pass, for every ordering key with open messages, in key order:
- scheduled messages whose time has come join their key's queue
  (`make_due`; the promote loop does this on time, this sweep catches what
  Redis lost), and the ones due soon are put in the delay set if missing;
- the head is checked (`domain.ordering.plan_repairs`): in its stream
  (the queued index, checked against the stream itself), in the delay set,
  or in a worker's hands (a lease, or an expired lease whose holder still
  heartbeats, up to a hard bound); a head that is nowhere is queued.
  Nothing else of the key needs to be in Redis: when the head finishes, its
  completion queues the next one.

Checks are O(1) per head (a hash lookup and an XRANGE of one entry). Any
number of workers run this loop; a short Redis lock lets one of them do
each pass, and two overlapping passes could only queue a duplicate hint.

Every `HOUSEKEEPING_EVERY` passes, after the repairs, the pass also purges
what Postline no longer needs (`services/housekeeping.py`), a bounded number
of batches; while rows are left over it purges again at the next pass, so a
backlog drains without any one pass running long.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from postline.domain.ordering import Head, needs_queue_check, plan_repairs
from postline.queue.streams import Enqueue
from postline.services.housekeeping import Housekeeping
from postline.services.ports import ReconcileQueue, ReconcileStore

log = logging.getLogger("postline.reconciler")

PAGE = 1000
#: Passes between two purges (10 minutes at the default interval), unless one is behind.
HOUSEKEEPING_EVERY = 60


def _item(head: Head) -> Enqueue:
    return Enqueue(head.id, head.channel, head.ordering_key)


class Reconciler:
    """One pass per `tick`, bounded by `max_per_pass` keys."""

    def __init__(
        self,
        *,
        store: ReconcileStore,
        queue: ReconcileQueue,
        owner: str,
        interval: float,
        lease_grace: float = 5.0,
        hard_bound: float = 0.0,
        max_per_pass: int = 100_000,
        housekeeping: Housekeeping | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._owner = owner
        self._interval = interval
        self._lease_grace = lease_grace
        self._hard_bound = hard_bound
        self._max = max_per_pass
        self._passes = 0
        self._housekeeping = housekeeping
        self._behind = False

    async def tick(self) -> int:
        """Runs a pass if no other worker holds the lock; returns messages re-queued."""
        ttl_ms = max(int(self._interval * 1000) - 50, 100)
        if not await self._queue.try_reconcile_lock(self._owner, ttl_ms=ttl_ms):
            return 0
        self._passes += 1
        due = await self._scheduled()
        if due:
            log.info("%d scheduled messages fell due without the delay set", due)
        repaired = await self._heads()
        if repaired:
            log.warning("queued again %d messages that Redis no longer held", repaired)
        if self._housekeeping and (self._behind or self._passes % HOUSEKEEPING_EVERY == 1):
            self._behind = (await self._housekeeping.purge()).behind
        return due + repaired

    async def _scheduled(self) -> int:
        moved = 0
        while True:
            due = await self._store.make_due(limit=PAGE)
            await self._queue.push([_item(h) for h in due])
            moved += len(due)
            if len(due) < PAGE:
                break
        soon = await self._store.scheduled_before(until=3 * self._interval, limit=10 * PAGE)
        later = [(_item(h), h.send_at.timestamp()) for h in soon if h.send_at is not None]
        await self._queue.schedule_many(later, retry=False, keep=True)
        return moved

    async def _heads(self) -> int:
        after: str | None = None
        seen = repaired = 0
        live = [beat.name for beat in await self._queue.live_workers()]
        while seen < self._max:
            heads = await self._store.open_heads(
                after_key=after,
                limit=PAGE,
                lease_grace=self._lease_grace,
                live=live,
                hard_bound=self._hard_bound,
            )
            if not heads:
                break
            after = heads[-1].ordering_key
            seen += len(heads)
            now = datetime.now(UTC)
            check = [_item(h) for h in heads if needs_queue_check(h, now)]
            plan = plan_repairs(heads, queued=await self._queue.queued(check), now=now)
            await self._queue.push([_item(h) for h in plan.push])
            retries = [
                (_item(h), h.next_attempt_at.timestamp()) for h in plan.delay if h.next_attempt_at
            ]
            await self._queue.schedule_many(retries, retry=True, keep=True)
            repaired += len(plan.push)
        return repaired
