"""The campaign's client against a stand-in API: one send at a time per key, one log line each."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from postline.chaos.load import Load, LoadSpec, arrivals
from postline.chaos.records import client_records, parse_body, read_lines


class StandInApi:
    """Answers sends after a short random wait; notes any key with two sends in flight."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.overlaps = 0
        self.bodies: list[str] = []
        self.rng = random.Random(3)

    async def send(self, request: web.Request) -> web.Response:
        payload = await request.json()
        key = payload["ordering_key"]
        self.in_flight[key] += 1
        self.overlaps += self.in_flight[key] > 1
        self.bodies.append(payload["body"])
        try:
            await asyncio.sleep(self.rng.uniform(0.0, 0.03))
        finally:
            self.in_flight[key] -= 1
        if self.rng.random() < 0.1:
            return web.json_response({"error": {"code": "unavailable"}}, status=503)
        return web.json_response({"id": f"id-{len(self.bodies)}", "status": "pending"}, status=202)


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, StandInApi]]:
    stand_in = StandInApi()
    app = web.Application()
    app.router.add_post("/api/v1/messages/send", stand_in.send)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", stand_in
    finally:
        await runner.cleanup()


async def test_sends_are_sequential_per_key_and_each_is_logged(
    api: tuple[str, StandInApi], tmp_path: Path
) -> None:
    url, stand_in = api
    spec = LoadSpec(url, rate=300, keys=4, duration=1.0, seed=9, token="tok")
    log = tmp_path / "client.jsonl"
    load = Load(spec, log)

    loop = asyncio.get_running_loop()
    result = await asyncio.to_thread(load.run, loop.time() + 0.1)

    records = client_records(read_lines(log))
    assert stand_in.overlaps == 0
    assert 200 < result.requests + result.skipped < 400  # about rate x duration
    assert result.requests == len(records) == len(stand_in.bodies)
    assert result.acknowledged == sum(r.acknowledged for r in records)
    assert {r.status for r in records} == {202, 503}
    assert all(r.message_id for r in records if r.acknowledged)
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.sent):
        by_key[record.key].append(record.n)
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers), key  # issued in arrival order
        earlier = [r for r in records if r.key == key]
        for a in earlier:
            for b in earlier:
                if a.n < b.n:
                    assert a.answered <= b.sent  # the next only after the answer
    assert {parse_body(body, "tok") is not None for body in stand_in.bodies} == {True}


def test_arrivals_replay_by_seed_at_the_rate_asked() -> None:
    spec = LoadSpec("http://127.0.0.1:1", rate=150, keys=100, duration=60, seed=4, token="t")

    first = list(arrivals(spec))

    assert first == list(arrivals(spec))
    assert first != list(arrivals(LoadSpec(**{**spec.__dict__, "seed": 5})))
    assert 8500 < len(first) < 9500
    assert [offset for offset, _, _ in first] == sorted(offset for offset, _, _ in first)
    numbers: dict[int, list[int]] = defaultdict(list)
    for _, index, n in first:
        numbers[index].append(n)
    assert all(ns == list(range(1, len(ns) + 1)) for ns in numbers.values())
    assert len(numbers) == 100
