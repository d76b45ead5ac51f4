"""Which route an attempt takes, by the health of the routes (rules: `domain/routes.py`).

One `Router` per process (a worker, or the API in sync mode). A send asks
it for a route (`pick`) and tells it how the route did (`report`); neither
waits on Redis, except to take a probe token while a route is half-open.
Pacing, before the claim, asks where a send would go (`preferred`: the
same choice without a probe token), to charge that route's account.
`tick`, a few times a second, adds this process's outcomes to the shared
tallies in Redis, reads every route's circuit and window back, moves the
circuits the rules say must move (compare-and-set, so one process writes a
transition), and keeps the result for `pick`.

Sync mode has no side loop: there a pick starts a tick when the last one is
older than `REFRESH_SECONDS`, so the API shares its outcomes at its next send.

When Redis does not answer, the router falls back to a breaker of its own:
the same rules over this process's outcomes alone, starting from the last
circuits it read. It goes back to the shared one as soon as Redis answers.

An attempt takes one route; a failure goes through the normal retry path,
and the retry is picked again (away from the route that failed, while
another is closed). Order stays with the claim: the key's head is its head
while it retries, whichever route it goes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from postline.domain.channels import Channel
from postline.domain.message import Message
from postline.domain.routes import (
    Circuit,
    CircuitPolicy,
    Health,
    Pick,
    Tally,
    advance,
    bucket_of,
    candidates,
    draw_of,
    route_names,
    window_buckets,
    window_tally,
)
from postline.metrics import WorkerMetrics
from postline.providers.base import Route
from postline.providers.registry import build_routes
from postline.queue.routes import RouteHealthStore, RouteReading
from postline.settings import Settings

log = logging.getLogger("postline.routes")

#: How often a router shares its outcomes and reads the circuits back.
REFRESH_SECONDS = 0.25
#: The most a send waits for a probe token before it takes one of its own.
PROBE_TOKEN_SECONDS = 0.5
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


def circuit_policy(settings: Settings) -> CircuitPolicy:
    """The circuit rules the settings ask for (ROUTE_* settings)."""
    return CircuitPolicy(
        window_seconds=settings.route_window_seconds,
        threshold=settings.route_error_threshold,
        min_requests=settings.route_min_requests,
        open_seconds=settings.route_open_seconds,
        probes=settings.route_probes,
        probe_seconds=settings.provider_timeout_seconds + settings.route_open_seconds,
        ramp_seconds=settings.route_ramp_seconds,
    )


def build_router(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    redis: aioredis.Redis,
    metrics: WorkerMetrics | None = None,
    refresh_on_pick: bool = True,
) -> Router:
    """The router of a process: its routes from the settings, health shared in `redis`.
    A worker refreshes it from a side loop (`refresh_on_pick=False`); sync mode has
    none, so its picks do."""
    return Router(
        plan=build_routes(settings, session),
        health=RouteHealthStore(redis),
        policy=circuit_policy(settings),
        metrics=metrics,
        refresh_on_pick=refresh_on_pick,
    )


@dataclass(frozen=True, slots=True)
class Taken:
    """The route an attempt goes through; `probe`: the half-open spell it probes."""

    route: Route
    probe: int | None = None


class Router:
    """Picks routes by their shared circuits; see the module docstring."""

    def __init__(
        self,
        *,
        plan: Mapping[Channel, Sequence[Route]],
        health: RouteHealthStore | None,
        policy: CircuitPolicy,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], float] = time.time,
        refresh_on_pick: bool = True,
    ) -> None:
        self._plan = {channel: tuple(routes) for channel, routes in plan.items()}
        self._by_name = {
            channel: {r.name: r for r in routes} for channel, routes in self._plan.items()
        }
        self._every = {r.name: r for routes in self._plan.values() for r in routes}
        self.names = route_names({c: [r.name for r in rs] for c, rs in self._plan.items()})
        self._refresh_on_pick = refresh_on_pick
        self._health = health
        self.policy = policy
        self._metrics = metrics
        self._clock = clock
        self.circuits: dict[str, Circuit] = {name: Circuit() for name in self.names}
        self.shared = health is not None
        # Outcomes not yet added to Redis, and this process's own (the fallback).
        self._unshared: dict[tuple[str, int], Tally] = defaultdict(Tally)
        self._unshared_probes: dict[tuple[str, int], Tally] = defaultdict(Tally)
        self._own: dict[tuple[str, int], Tally] = defaultdict(Tally)
        self._own_probes: dict[tuple[str, int], Tally] = defaultdict(Tally)
        self._own_tokens: dict[tuple[str, int], int] = defaultdict(int)
        self._spent: set[tuple[str, int]] = set()  # half-open spells whose tokens are gone
        self._refreshed = float("-inf")
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    @classmethod
    def fixed(cls, routes: Mapping[Channel, Route]) -> Router:
        """One route per channel, no shared health (tests, tools)."""
        return cls(plan={c: [r] for c, r in routes.items()}, health=None, policy=CircuitPolicy())

    async def pick(self, message: Message) -> Taken:
        """The route for this attempt of `message` (its `route`: where the last one went)."""
        if self._refresh_on_pick:
            self._refresh_soon()
        routes = self._plan[message.type]
        if len(routes) == 1:
            return Taken(routes[0])
        by_name = self._by_name[message.type]
        retry_of = message.route if message.attempts > 1 else None
        for pick in self._candidates(message.type, message.id, retry_of):
            if not pick.probe:
                return Taken(by_name[pick.route])
            version = self.circuits[pick.route].version
            if await self._take_probe(pick.route, version):
                log.info("route %s: probe %d sent", pick.route, version)
                return Taken(by_name[pick.route], probe=version)
        raise AssertionError("candidates ends in a route")  # pragma: no cover

    def preferred(
        self, channel: Channel, *, message_id: uuid.UUID, last_route: str | None = None
    ) -> Route:
        """The route a send of this message would take now, short of a probe
        token: `pick`'s choice over the circuits last read, without a Redis
        call. `last_route` is where its last attempt went (None: a fresh
        message), as `pick` reads it from the claimed message.

        A half-open route is skipped (most fresh sends find its few tokens
        gone); a ramp is split by the message's own draw, as in `pick`.
        """
        routes = self._plan[channel]
        if len(routes) == 1:
            return routes[0]
        picks = self._candidates(channel, message_id, last_route)
        return self._by_name[channel][next(p.route for p in picks if not p.probe)]

    def account_of(self, route: str) -> str:
        """The pacing bucket of `route`'s provider account."""
        return self._every[route].account

    def report(self, taken: Taken, health: Health) -> None:
        """How `taken`'s route did (`domain.routes.health_of`)."""
        name = taken.route.name
        if self._metrics is not None:
            self._metrics.route_attempts.labels(name, health.value).inc()
        if health is Health.THROTTLED:
            return
        tally = Tally(1, 0) if health is Health.OK else Tally(0, 1)
        if taken.probe is not None:
            self._unshared_probes[(name, taken.probe)] += tally
            self._own_probes[(name, taken.probe)] += tally
            return
        bucket = (name, bucket_of(self._clock(), self.policy))
        self._unshared[bucket] += tally
        self._own[bucket] += tally

    async def tick(self) -> None:
        """Shares this process's outcomes, reads the circuits, moves those that must move."""
        async with self._lock:  # one at a time: a pick may have started one (`_refresh_soon`)
            now = self._clock()
            self._refreshed = now
            readings = await self._shared_readings(now)
            if readings is None:
                readings = self._own_readings(now)
            for name, reading in readings.items():
                await self._advance(name, reading, now)
            self._forget_old(now)

    async def close(self) -> None:
        if self._refresh is not None:
            with contextlib.suppress(Exception):
                await self._refresh

    def _candidates(
        self, channel: Channel, message_id: uuid.UUID, retry_of: str | None
    ) -> list[Pick]:
        routes = self._plan[channel]
        return candidates(
            [(r.name, self.circuits[r.name]) for r in routes],
            now=self._clock(),
            policy=self.policy,
            draw=draw_of(message_id),
            retry_of=retry_of if retry_of in self._by_name[channel] else None,
        )

    def _refresh_soon(self) -> None:
        """Sync mode has no side loop: a pick starts a tick when the last one is old."""
        if self._clock() - self._refreshed < REFRESH_SECONDS or self._lock.locked():
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._quiet_tick())

    async def _quiet_tick(self) -> None:
        try:
            await self.tick()
        except Exception:  # a bug must show, and must not cost the send that started it
            log.exception("route health refresh failed")

    async def _shared_readings(self, now: float) -> dict[str, RouteReading] | None:
        if self._health is None:
            return None
        window, self._unshared = dict(self._unshared), defaultdict(Tally)
        probes, self._unshared_probes = dict(self._unshared_probes), defaultdict(Tally)
        try:
            ttl = self.policy.window_seconds + 2 * self.policy.bucket_seconds
            await self._health.add(window, probes, ttl=max(ttl, 2 * self.policy.probe_seconds))
            readings = await self._health.read(self.names, window_buckets(now, self.policy))
        except _REDIS_DOWN as exc:
            # Kept for the next try: the shared circuits must hear of them too.
            for key, tally in window.items():
                self._unshared[key] += tally
            for key, tally in probes.items():
                self._unshared_probes[key] += tally
            if self.shared:
                log.warning("route health: redis unavailable, each process decides alone: %s", exc)
            self.shared = False
            return None
        if not self.shared:
            log.warning("route health: redis answers again, circuits are shared again")
        self.shared = True
        return readings

    def _own_readings(self, now: float) -> dict[str, RouteReading]:
        readings = {}
        for name in self.names:
            circuit = self.circuits[name]
            buckets = {start: tally for (route, start), tally in self._own.items() if route == name}
            probes = self._own_probes.get((name, circuit.version), Tally())
            readings[name] = RouteReading(circuit, buckets, probes)
        return readings

    async def _advance(self, name: str, reading: RouteReading, now: float) -> None:
        circuit = reading.circuit
        window = window_tally(reading.buckets, circuit=circuit, now=now, policy=self.policy)
        moved = advance(circuit, window=window, probes=reading.probes, now=now, policy=self.policy)
        if moved != circuit and (not self.shared or await self._swapped(name, circuit, moved)):
            log.warning(
                "route %s: %s -> %s (window: %d of %d failed; probes: %d ok, %d failed)",
                name, circuit.state.value, moved.state.value, window.failed, window.total,
                reading.probes.ok, reading.probes.failed,
            )  # fmt: skip
            circuit = moved
        self.circuits[name] = circuit

    async def _swapped(self, name: str, old: Circuit, new: Circuit) -> bool:
        assert self._health is not None
        try:
            return await self._health.swap(name, expected=old.version, new=new)
        except _REDIS_DOWN:
            return False  # read again next tick

    async def _take_probe(self, name: str, version: int) -> bool:
        if (name, version) in self._spent:
            return False
        if self._health is not None and self.shared:
            try:
                # Bounded: a send must not spend its provider deadline waiting on Redis.
                async with asyncio.timeout(PROBE_TOKEN_SECONDS):
                    took = await self._health.take_probe(
                        name, version=version, limit=self.policy.probes,
                        ttl=2 * self.policy.probe_seconds,
                    )  # fmt: skip
            except _REDIS_DOWN:
                took = self._take_own_probe(name, version)
        else:
            took = self._take_own_probe(name, version)
        if not took:
            self._spent.add((name, version))
        return took

    def _take_own_probe(self, name: str, version: int) -> bool:
        self._own_tokens[(name, version)] += 1
        return self._own_tokens[(name, version)] <= self.policy.probes

    def _forget_old(self, now: float) -> None:
        oldest = window_buckets(now, self.policy)[0]
        for buckets in (self._own, self._unshared):
            for key in [k for k in buckets if k[1] < oldest]:
                del buckets[key]
        current = {(name, c.version) for name, c in self.circuits.items()}
        for key in [k for k in self._own_probes if k not in current]:
            del self._own_probes[key]
        for key in [k for k in self._own_tokens if k not in current]:
            del self._own_tokens[key]
        self._spent &= current
