"""The leases a worker holds: its claims stay its own while it works on them.

A claim is a lease in PostgreSQL (`held_by`, `lease_until`). While a send's
provider call or its status write is pending, the heartbeat renews it, so no
other worker takes a live send over; a dead worker's leases run out and its
messages are claimed again. Before it calls the provider, a send checks
that its lease has not lapsed meanwhile (a process paused past it). A
worker whose leases lapsed (cut off from PostgreSQL) reads nothing until a
renewal goes through (`runner`).

A send still inside its provider call past the provider deadline (plus a
margin) is not renewed: the deadline is enforced, so such a send is stuck,
and its lease may run out and be taken over.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from postline.queue.pacing import Ask
from postline.queue.streams import Entry
from postline.services.ports import WorkStore

HEARTBEAT_SECONDS = 2.0
#: A send stops calling the provider this close to its lease's end.
LEASE_MARGIN_SECONDS = 2.0
#: An expired lease whose holder still heartbeats (alive, but cut off from
#: PostgreSQL, or stuck) is taken over only this many leases after it ran out.
HARD_BOUND_LEASES = 4


@dataclass(slots=True)
class Held:
    """A message this worker holds: claimed, being sent or being written."""

    entry: Entry
    claimed: float  # monotonic
    lease_ok_until: float  # monotonic: the lease is ours until then, margin included
    answered: bool = False  # the provider call is over; only the status write is left
    paced: Ask | None = None  # the pacing slots it took, if pacing is on


class Leases:
    """What this worker holds, by message id, and the renewal of its leases."""

    def __init__(
        self, *, store: WorkStore, holder: str, lease: float, provider_timeout: float
    ) -> None:
        self._store = store
        self._holder = holder
        self.lease = lease
        self.hard_bound = HARD_BOUND_LEASES * lease
        self._provider_timeout = provider_timeout
        self.held: dict[uuid.UUID, Held] = {}
        #: Ids of a claim that failed: it may have committed all the same.
        self.unsure: set[uuid.UUID] = set()

    def hold(self, message_id: uuid.UUID, entry: Entry, paced: Ask | None) -> None:
        """Records a message just claimed for the lease the claim gave it."""
        now = time.monotonic()
        self.held[message_id] = Held(
            entry, now, now + self.lease - LEASE_MARGIN_SECONDS, paced=paced
        )

    async def release_unsure(self) -> None:
        """Gives up the leases a failed claim may have taken (see `dispatch`):
        their lease then runs out like a dead worker's, without the hard bound."""
        if not self.unsure:
            return
        ids = [i for i in self.unsure if i not in self.held]
        await self._store.release_many(ids, holder=self._holder)
        self.unsure.clear()

    def _renewable(self, now: float) -> list[uuid.UUID]:
        """What the heartbeat renews: all it holds but sends stuck past the deadline."""
        bound = self._provider_timeout + LEASE_MARGIN_SECONDS
        return [
            message_id
            for message_id, held in self.held.items()
            if held.answered or now - held.claimed < bound
        ]

    def lapsed(self) -> bool:
        """A lease this worker should have renewed has run out (margin included):
        PostgreSQL is out of its reach, or the process was paused. Such a
        worker takes no new work until a renewal goes through."""
        now = time.monotonic()
        return any(now > self.held[i].lease_ok_until for i in self._renewable(now))

    async def renew(self) -> None:
        started = time.monotonic()
        ids = self._renewable(started)
        if not ids:
            return
        await self._store.renew(ids, holder=self._holder, lease=self.lease)
        for message_id in ids:
            held = self.held.get(message_id)
            if held is not None:
                held.lease_ok_until = started + self.lease - LEASE_MARGIN_SECONDS
