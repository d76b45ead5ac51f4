"""Route health shared by every process, in Redis (the rules: `domain/routes.py`).

Per route: its circuit (a hash: state, since, version), its outcomes in
window buckets (one hash per bucket, `ok` and `failed`, expiring once the
window has passed them), and per half-open spell the probe tokens taken and
the probes' results. Outcomes are added in batches (`add`), a few times a
second per process, so a send costs no Redis round trip of its own; a
probe token costs one, and only while a route is half-open.

A transition is written with a compare-and-set on the version, so of two
processes that saw the same circuit change, one writes it and the other
reads the result on its next pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from postline.domain.routes import Circuit, CircuitState, Tally
from postline.queue import keys

# KEYS[1]: a circuit. ARGV: expected version, state, since, new version.
# Writes the circuit only if its version is still the expected one.
_SWAP = """
local current = redis.call('HGET', KEYS[1], 'version') or '0'
if current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[3], 'version', ARGV[4])
return 1
"""


@dataclass(frozen=True, slots=True)
class RouteReading:
    circuit: Circuit
    buckets: dict[int, Tally]
    probes: Tally


def _int(value: str | None) -> int:
    return int(value) if value else 0


def _circuit(fields: Mapping[str, str]) -> Circuit:
    """The stored circuit (the client decodes answers); none stored: closed, version 0."""
    if not fields:
        return Circuit()
    state = CircuitState(fields.get("state", CircuitState.CLOSED.value))
    return Circuit(state, float(fields.get("since", "0")), _int(fields.get("version")))


class RouteHealthStore:
    """The Redis side of route health."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._swap = client.register_script(_SWAP)

    async def add(
        self,
        window: Mapping[tuple[str, int], Tally],
        probes: Mapping[tuple[str, int], Tally],
        *,
        ttl: float,
    ) -> None:
        """Adds outcomes: per (route, bucket start) and per (route, half-open version)."""
        if not window and not probes:
            return
        seconds = max(1, int(ttl))
        async with self.client.pipeline(transaction=False) as pipe:
            for (route, start), tally in window.items():
                self._increment(pipe, keys.route_bucket(route, start), tally, seconds)
            for (route, version), tally in probes.items():
                self._increment(pipe, keys.route_probes(route, version), tally, seconds)
            await pipe.execute()

    @staticmethod
    def _increment(pipe: aioredis.client.Pipeline, key: str, tally: Tally, ttl: int) -> None:
        if tally.ok:
            pipe.hincrby(key, "ok", tally.ok)
        if tally.failed:
            pipe.hincrby(key, "failed", tally.failed)
        pipe.expire(key, ttl)

    async def read(self, routes: Sequence[str], buckets: Sequence[int]) -> dict[str, RouteReading]:
        """Each route's circuit, its window buckets, and its current probes' results."""
        async with self.client.pipeline(transaction=False) as pipe:
            for route in routes:
                pipe.hgetall(keys.route_circuit(route))
                for start in buckets:
                    pipe.hmget(keys.route_bucket(route, start), "ok", "failed")
            answers = await pipe.execute()
        circuits: dict[str, Circuit] = {}
        windows: dict[str, dict[int, Tally]] = {}
        step = len(buckets) + 1
        for i, route in enumerate(routes):
            part = answers[i * step : (i + 1) * step]
            circuits[route] = _circuit(part[0])
            windows[route] = {
                start: Tally(_int(ok), _int(failed))
                for start, (ok, failed) in zip(buckets, part[1:], strict=True)
                if ok or failed
            }
        half_open = [r for r in routes if circuits[r].state is CircuitState.HALF_OPEN]
        probes: dict[str, Tally] = {}
        if half_open:
            async with self.client.pipeline(transaction=False) as pipe:
                for route in half_open:
                    pipe.hmget(keys.route_probes(route, circuits[route].version), "ok", "failed")
                for route, (ok, failed) in zip(half_open, await pipe.execute(), strict=True):
                    probes[route] = Tally(_int(ok), _int(failed))
        return {r: RouteReading(circuits[r], windows[r], probes.get(r, Tally())) for r in routes}

    async def swap(self, route: str, *, expected: int, new: Circuit) -> bool:
        """Writes `new` if the stored circuit is still version `expected`."""
        args = [expected, new.state.value, repr(new.since), new.version]
        return bool(await self._swap(keys=[keys.route_circuit(route)], args=args))

    async def take_probe(self, route: str, *, version: int, limit: int, ttl: float) -> bool:
        """One of the `limit` probe tokens of half-open spell `version`, if one is left."""
        key = keys.route_probes(route, version)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "taken", 1)
            pipe.expire(key, max(1, int(ttl)))
            taken, _ = await pipe.execute()
        return int(taken) <= limit
