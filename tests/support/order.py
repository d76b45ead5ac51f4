"""Per-key order as the provider saw it, and keyed load that defines that order.

Order is judged from the simulator's log of provider calls, never from
Postline's own tables: a test that read the order back from the database
would only check that Postline agrees with itself.

A message's body is its tag `<key>:<n>`. `KeyedLoad` sends each key's
messages one after the other (the next only once the previous was answered),
so the acceptance order of a key is the order of its 2xx answers; different
keys go in parallel.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from postline.simulator.state import SimulatorState


@dataclass(frozen=True, slots=True)
class Call:
    """One provider call: whose, which message, how it ended, when."""

    key: str
    tag: str
    ok: bool
    seq: int  # the simulator's answer order
    received: float = 0.0  # unix seconds the request arrived
    answered: float = 0.0  # unix seconds the simulator answered (0: not known)


def accepted(record: Mapping[str, Any]) -> bool:
    """Whether the provider took the message (its outcome, not the HTTP status, says so)."""
    return bool(record["accepted"])


def calls_from_requests(requests: Iterable[Mapping[str, Any]]) -> list[Call]:
    """Calls from `GET /_sim/requests` records whose body is a tag, in answer order."""
    calls = []
    for r in requests:
        body = r.get("body") or ""
        if ":" in body:
            calls.append(Call(body.split(":", 1)[0], body, accepted(r), r["seq"]))
    return sorted(calls, key=lambda c: c.seq)


class CallRecorder:
    """Records every call an in-process simulator ends, with its arrival and end times."""

    def __init__(self, state: SimulatorState) -> None:
        self.calls: list[Call] = []
        original = state.record

        def record(r: dict[str, Any]) -> None:
            original(r)
            body = r.get("body") or ""
            if ":" in body:
                key = body.split(":", 1)[0]
                self.calls.append(
                    Call(key, body, accepted(r), r["seq"], r["received_at"], r["ended_at"])
                )

        state.record = record  # type: ignore[method-assign]


@dataclass
class OrderReport:
    """What the provider saw, judged against each key's acceptance order."""

    keys: int
    messages: int
    calls: int = 0
    sent: int = 0
    overtakes: int = 0  # a call for a message while an earlier one of its key was unsent
    duplicates: int = 0  # a successful call for a message already sent
    missing: list[str] = field(default_factory=list)  # never sent

    def line(self) -> str:
        return (
            f"{self.keys} keys, {self.messages} messages, {self.calls} provider calls, "
            f"{self.sent} sent, {self.overtakes} out of order, {self.duplicates} duplicates, "
            f"{len(self.missing)} never sent"
        )


def judge(calls: Sequence[Call], expected: Mapping[str, Sequence[str]]) -> OrderReport:
    """Walks each key's calls in answer order against its expected tags.

    A key's current message is its first one not yet sent. A call for a later
    message is an overtake (the spec's "n+1 not sent until n is sent"); a
    successful call for an earlier one is a duplicate.
    """
    report = OrderReport(len(expected), sum(map(len, expected.values())))
    by_key: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.key in expected:
            by_key[call.key].append(call)
    for key, tags in expected.items():
        index = {tag: i for i, tag in enumerate(tags)}
        sent: set[str] = set()
        head = 0
        for call in by_key[key]:
            report.calls += 1
            i = index.get(call.tag)
            if i is None:
                continue
            if call.ok and call.tag in sent:
                report.duplicates += 1
                continue
            report.overtakes += int(i > head)
            if call.ok:
                sent.add(call.tag)
                while head < len(tags) and tags[head] in sent:
                    head += 1
        report.sent += len(sent)
        report.missing += [tag for tag in tags if tag not in sent]
    return report


def overlaps(calls: Sequence[Call]) -> int:
    """Pairs of calls of one key where the later arrived before the earlier was answered."""
    by_key: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_key[call.key].append(call)
    found = 0
    for key_calls in by_key.values():
        ordered = sorted(key_calls, key=lambda c: c.received)
        for a, b in itertools.pairwise(ordered):
            found += int(b.received < a.answered)
    return found


class KeyedLoad:
    """Messages for `keys` ordering keys; remembers each key's acceptance order."""

    def __init__(
        self, keys: int, *, prefix: str = "k", first_number: int = 0, sender: str = "+15550000000"
    ) -> None:
        self.sender = sender
        self.keys = [f"{prefix}{k}" for k in range(keys)]
        # The key is the recipient (the default ordering key), one number per key.
        self.to = {key: f"+1555{first_number + k:07d}" for k, key in enumerate(self.keys)}
        self.accepted: dict[str, list[str]] = {key: [] for key in self.keys}
        self.ids: list[str] = []
        self.refused = 0
        self._next = dict.fromkeys(self.keys, 0)

    def payload(self, key: str, **extra: Any) -> dict[str, Any]:
        n = self._next[key]
        self._next[key] = n + 1
        return {
            "from": self.sender, "to": self.to[key], "type": "sms",
            "body": f"{key}:{n}", **extra,
        }  # fmt: skip

    async def send(
        self, api: httpx.AsyncClient, per_key: int, *, keys: Sequence[str] | None = None,
        parallel: int = 32,
    ) -> int:  # fmt: skip
        """Sends `per_key` messages to each key (in order per key); returns how many got 2xx."""
        chosen = list(keys) if keys is not None else self.keys
        gate = asyncio.Semaphore(parallel)
        before = len(self.ids)

        async def chain(key: str) -> None:
            async with gate:
                for _ in range(per_key):
                    payload = self.payload(key)
                    answer = await api.post("/api/v1/messages/send", json=payload)
                    if answer.status_code in (200, 201, 202):
                        self.accepted[key].append(payload["body"])
                        self.ids.append(answer.json()["id"])
                    else:
                        self.refused += 1

        await asyncio.gather(*(chain(key) for key in chosen))
        return len(self.ids) - before

    async def send_batches(self, api: httpx.AsyncClient, per_key: int, *, size: int = 1000) -> int:
        """Sends `per_key` rounds of one message per key through the batch endpoint.

        Batches go one after the other, so a key's messages are accepted in
        round order (a batch keeps its own order). Returns how many got in.
        """
        before = len(self.ids)
        for _ in range(per_key):
            for start in range(0, len(self.keys), size):
                chunk = [self.payload(key) for key in self.keys[start : start + size]]
                answer = await api.post("/api/v1/messages/batch", json={"messages": chunk})
                answer.raise_for_status()
                for payload, result in zip(chunk, answer.json()["results"], strict=True):
                    if result.get("id"):
                        self.accepted[payload["body"].split(":", 1)[0]].append(payload["body"])
                        self.ids.append(result["id"])
                    else:
                        self.refused += 1
        return len(self.ids) - before

    def note(self, key: str, tag: str, message_id: str) -> None:
        """Records a message accepted outside `send` (a scheduled one that fell due, say)."""
        self.accepted[key].append(tag)
        self.ids.append(message_id)
