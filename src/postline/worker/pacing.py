"""The worker's side of pacing: slots are taken before the claim.

A message whose sender or account has no slot free is never claimed: its
stream entry goes back to the delay set for exactly its wait (then it is
acknowledged), so it holds no worker slot, no lease and no attempt, and
other senders' and other keys' messages in the same batch go on. Order is
kept by the claim, as always: a waiting head is still its key's first open
message, and nothing behind it is queued until it completes.

A message is paced against the account of the route its send will take:
the worker's router tells which (`Router.preferred`, from the circuits it
last read; the pick itself comes after the claim). A concurrency slot goes
back to the account it was taken from (the `Ask` keeps its pace), and a
429 holds the account of the route that answered it.

Only the messages a claim would take are charged (`MessageStore.senders`);
the slots of those it then refuses anyway are given back. If Redis does not
answer, the batch fails like a failed read: its entries stay pending and
are taken over later, so pacing never lets messages out unpaced, and
delivery resumes with Redis (the queue needs it anyway).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from postline.batching import GroupCommit
from postline.domain.pacing import PacingRules, Sender, pace_of
from postline.queue.items import Enqueue, Entry
from postline.queue.pacing import Ask, RedisPacer
from postline.services.routing import Router


class SenderLookup(Protocol):
    async def senders(self, ids: Sequence[uuid.UUID]) -> list[Sender]: ...


@dataclass(slots=True)
class Admission:
    """A batch after pacing: what may be claimed, and what waits until when."""

    charged: dict[uuid.UUID, Ask] = field(default_factory=dict)
    waiting: list[tuple[Enqueue, float]] = field(default_factory=list)  # (message, epoch s)
    waiting_ids: set[uuid.UUID] = field(default_factory=set)
    waits: list[tuple[str, float]] = field(default_factory=list)  # (sender class, seconds)


class Pacing:
    """Takes slots for a batch of entries before their claim (see module docstring)."""

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

    def start(self, holder: str) -> None:
        self.holder = holder
        self._frees.start()

    async def close(self) -> None:
        await self._frees.close()

    async def admit(self, by_id: Mapping[uuid.UUID, Entry]) -> Admission:
        admission = Admission()
        senders = await self._store.senders(list(by_id))
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

    async def done(self, ask: Ask) -> None:
        """Frees a sent message's concurrency slot (its provider call is over)."""
        if ask.pace.concurrency:
            await self._frees.submit(ask)

    async def _free(self, asks: Sequence[Ask]) -> None:
        await self._pacer.give_back(done=asks, holder=self.holder)

    async def hold(self, route: str, seconds: float) -> None:
        """The provider said "too fast" through `route`: nothing paced against
        that route's account goes for `seconds` (whatever account the message
        itself was paced against)."""
        await self._pacer.hold(self._routes.account_of(route), seconds)
