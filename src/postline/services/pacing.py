"""Pacing a send: slots are taken before the claim (README, "Pacing").

The same shared buckets pace the worker and sync mode's inline attempt, so
a limit holds across every worker and every API process, never per process.
A message whose sender or account has no slot free is never claimed: it
goes to the delay set for exactly its wait, holding no worker slot, no lease
and no attempt, and other senders' and other keys' messages go on. Order is
kept by the claim, as always: a waiting head is still its key's first open
message, and nothing behind it is queued until it completes.

A message is paced against the account of the route its send will take:
the process's router tells which (`Router.preferred`, from the circuits it
last read; the pick itself comes after the claim). A concurrency slot goes
back to the account it was taken from (the `Ask` keeps its pace), and a
429 holds the account of the route that answered it.

Only the messages a claim would take are charged (`MessageStore.senders`);
the slots of those it then refuses anyway are given back, and the claim
takes no pending message or due retry without its slot (`paced`): one that
became its key's first just after that read waits for its own. If Redis does not
answer, nothing is claimed (a worker's batch fails like a failed read, its
entries stay pending; sync mode makes no inline attempt and the reconciler
queues the message), so pacing never lets messages out unpaced, and
delivery resumes with Redis (the queue needs it anyway).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from postline.batching import GroupCommit
from postline.domain.outcomes import Outcome
from postline.domain.pacing import PacingRules, Sender, SenderClass, pace_of
from postline.queue.items import Enqueue
from postline.queue.pacing import Ask, RedisPacer
from postline.services.routing import Router
from postline.settings import LEASE_HEADROOM_SECONDS, Settings

log = logging.getLogger("postline.pacing")


def pacing_rules(settings: Settings) -> PacingRules:
    """`PACING_*` as rules: class rates, per-sender overrides, the concurrency cap."""
    senders: dict[str, float | SenderClass] = {
        sender: SenderClass(limit) if isinstance(limit, str) else float(limit)
        for sender, limit in settings.pacing_senders.items()
    }
    return PacingRules(
        rates={
            SenderClass.LONG_CODE: settings.pacing_long_code_rate,
            SenderClass.TOLL_FREE: settings.pacing_toll_free_rate,
            SenderClass.SHORT_CODE: settings.pacing_short_code_rate,
            SenderClass.WHATSAPP: settings.pacing_whatsapp_rate,
            SenderClass.EMAIL: settings.pacing_email_rate,
        },
        senders=senders,
        account_concurrency=settings.pacing_account_concurrency,
    )


class SenderLookup(Protocol):
    async def senders(self, ids: Sequence[uuid.UUID]) -> list[Sender]: ...


def build_pacing(
    settings: Settings, redis: aioredis.Redis, store: SenderLookup, router: Router
) -> Pacing | None:
    """Shared pacing, when `PACING_ENABLED`, against the accounts of the
    routes `router` sends through. A concurrency slot is leased for as long
    as a provider call may take, plus headroom."""
    if not settings.pacing_enabled:
        return None
    lease = settings.provider_timeout_seconds + LEASE_HEADROOM_SECONDS
    return Pacing(
        rules=pacing_rules(settings),
        routes=router,
        pacer=RedisPacer(redis, lease_seconds=lease),
        store=store,
    )


@dataclass(slots=True)
class Admission:
    """A batch after pacing: what may be claimed, and what waits until when."""

    charged: dict[uuid.UUID, Ask] = field(default_factory=dict)
    waiting: list[tuple[Enqueue, float]] = field(default_factory=list)  # (message, epoch s)
    waiting_ids: set[uuid.UUID] = field(default_factory=set)
    waits: list[tuple[str, float]] = field(default_factory=list)  # (sender class, seconds)


class Pacing:
    """Takes slots for messages before their claim (see module docstring)."""

    def __init__(
        self,
        *,
        rules: PacingRules,
        routes: Router,
        pacer: RedisPacer,
        store: SenderLookup,
    ) -> None:
        self.rules = rules
        self._routes = routes
        self._pacer = pacer
        self._store = store
        self.holder = ""
        # Concurrency slots are freed in batches, one round trip for many sends.
        self._frees = GroupCommit(self._free, max_batch=1000, parallel=1)
        self._freeing: set[asyncio.Task[None]] = set()

    def start(self, holder: str) -> None:
        """`holder` names this process in its concurrency slots (unique per process)."""
        self.holder = holder
        self._frees.start()

    async def close(self) -> None:
        if self._freeing:
            await asyncio.wait(set(self._freeing))
        await self._frees.close()

    async def admit(self, ids: Sequence[uuid.UUID]) -> Admission:
        admission = Admission()
        senders = await self._store.senders(ids)
        if not senders:
            return admission
        asks = [
            Ask(str(s.id), pace_of(s.channel, s.from_addr, self.rules, self._account(s)))
            for s in senders
        ]
        waits = await self._pacer.take(asks, holder=self.holder)
        now = time.time()
        for sender, ask, wait_ms in zip(senders, asks, waits, strict=True):
            if wait_ms > 0:
                item = Enqueue(str(sender.id), sender.channel, sender.ordering_key)
                admission.waiting.append((item, now + wait_ms / 1000))
                admission.waiting_ids.add(sender.id)
                admission.waits.append((ask.pace.sender_class.value, wait_ms / 1000))
            else:
                admission.charged[sender.id] = ask
        return admission

    def _account(self, sender: Sender) -> str:
        """The account of the route this message's send would take now."""
        route = self._routes.preferred(
            sender.channel, message_id=sender.id, last_route=sender.route
        )
        return route.account

    async def unused(self, asks: Sequence[Ask]) -> None:
        """Gives back the slots of messages the claim refused."""
        if asks:
            await self._pacer.give_back(unused=asks, holder=self.holder)

    def done(self, ask: Ask) -> None:
        """Frees a sent message's concurrency slot (its provider call is over),
        in the background; if that fails, the slot's lease frees it."""
        if not ask.pace.concurrency:
            return
        task = asyncio.create_task(self._frees.submit(ask))
        self._freeing.add(task)
        task.add_done_callback(self._freed)

    def _freed(self, task: asyncio.Task[None]) -> None:
        self._freeing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("pacing: a slot release failed: %r", task.exception())

    async def _free(self, asks: Sequence[Ask]) -> None:
        await self._pacer.give_back(done=asks, holder=self.holder)

    async def throttled(self, outcome: Outcome) -> bool:
        """Whether the provider said "too fast" (a 429 under pacing): then
        nothing paced against the account of the route that answered goes
        until its Retry-After, whatever account the message itself was paced
        against. The message waits until then too, without using an attempt
        (its outcome says so); if Redis cannot be told, only the message waits."""
        hold, route = outcome.hold_seconds, outcome.route
        if hold is None or route is None:
            return False  # not throttled, or no provider answered
        try:
            await self._pacer.hold(self._routes.account_of(route), hold)
        except (RedisError, OSError) as exc:
            log.warning("pacing: could not hold the account of route %s: %r", route, exc)
        return True
