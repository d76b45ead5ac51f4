"""The campaign's judge: a pure function of the client, provider-call and fault logs.

It never asks Postline anything. Its definitions (RELIABILITY.md says the same):

- **acknowledged**: the client got a 2xx for the send request.
- **delivered**: the provider logged a call of the message with an
  accepting outcome (`accepted`, `reset`, `accepted_error`; see
  `postline.simulator.faults`). Its *first accept* is the earliest such call.
- **lost**: acknowledged and never delivered.
- **duplicate**: delivered by more than one accepting call. It is
  *explained* when an ambiguous-outcome fault (`AMBIGUOUS`, and a
  `route_down` that holds the primary's calls rather than refusing them)
  was active around the first accept: the call's [received, ended] interval meets the
  fault's [start - W, end + W], W = `WINDOW_SECONDS`. For a worker fault the
  window also reaches back to the start of a database outage that was still
  on (or ended less than W) before it, since a worker holds outcomes it
  cannot write while PostgreSQL is down.
- **order violation**: acknowledged A and B of one key, ack(A) < sent(B),
  both delivered, and B's first accept arrived before A's. Counted once per
  B (against the latest-arriving such A).
- **one-at-a-time violation**: a provider call (any outcome) of one message
  that arrives while a call of another message of the same key is still
  open, i.e. their [received, ended] intervals overlap. Counted once per call.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from postline.chaos.records import ClientRecord, FaultRecord, ProviderCall

WINDOW_SECONDS = 2.0
WORKER_FAULTS = frozenset({"worker_kill", "worker_stop", "worker_exit"})
#: Faults after which a sender may not know whether the provider took a message.
AMBIGUOUS = WORKER_FAULTS | {"provider_hang", "provider_reset", "provider_5xx"}
#: Ambiguous only when the fault holds calls (a timed-out call may be accepted
#: after all); a route answering 503 takes nothing.
AMBIGUOUS_WHEN_HELD = frozenset({"route_down"})
#: Faults during which a worker cannot record an outcome.
OUTAGES = frozenset({"postgres_restart"})

MessageKey = tuple[str, int]


@dataclass(frozen=True)
class Duplicate:
    key: str
    n: int
    accepts: int
    explained_by: str | None


@dataclass(frozen=True)
class OrderViolation:
    key: str
    earlier: int  # acknowledged first, delivered later
    later: int


@dataclass(frozen=True)
class Overlap:
    key: str
    open_n: int  # the message whose call was still open
    n: int  # the message whose call arrived meanwhile
    at: float


@dataclass(frozen=True)
class Report:
    requests: int
    acknowledged: int
    delivered: int
    delivered_unacknowledged: int
    lost: list[MessageKey]
    duplicates: list[Duplicate]
    order: list[OrderViolation]
    overlaps: list[Overlap]
    faults: dict[str, int]  # injected, by kind
    exits: dict[str, int]  # children that exited on their own, by name
    misfired: list[FaultRecord]  # faults whose action failed, or that lost Redis' data
    delays: list[float]  # request sent -> first accept, of acknowledged deliveries

    @property
    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicates if d.explained_by is None]

    def counts(self) -> dict[str, int]:
        """The four counts that must all be zero."""
        return {
            "lost": len(self.lost),
            "unexplained_duplicates": len(self.unexplained),
            "order_violations": len(self.order),
            "one_at_a_time_violations": len(self.overlaps),
        }

    @property
    def ok(self) -> bool:
        return not any(self.counts().values())


def check(
    client: Iterable[ClientRecord],
    calls: Iterable[ProviderCall],
    faults: Iterable[FaultRecord],
    *,
    window: float = WINDOW_SECONDS,
) -> Report:
    requests = list(client)
    calls = sorted(calls, key=lambda c: (c.received_at, c.ended_at))
    faults = list(faults)
    acked = {(r.key, r.n): r for r in requests if r.acknowledged}
    accepts: dict[MessageKey, list[ProviderCall]] = defaultdict(list)
    for call in calls:
        if call.accepted:
            accepts[(call.key, call.n)].append(call)
    first = {message: found[0] for message, found in accepts.items()}
    windows = _windows(faults, window)
    duplicates = [
        Duplicate(key, n, len(found), _explained_by(found[0], windows))
        for (key, n), found in sorted(accepts.items())
        if len(found) > 1
    ]
    return Report(
        requests=len(requests),
        acknowledged=len(acked),
        delivered=len(first),
        delivered_unacknowledged=sum(1 for m in first if m not in acked),
        lost=sorted(m for m in acked if m not in first),
        duplicates=duplicates,
        order=_order_violations(acked.values(), first),
        overlaps=_overlaps(calls),
        faults=dict(sorted(Counter(f.kind for f in faults if not _observed(f)).items())),
        exits=dict(sorted(Counter(f.target for f in faults if _observed(f)).items())),
        misfired=[f for f in faults if "error" in f.detail or f.detail.get("data_kept") is False],
        delays=sorted(first[m].received_at - r.sent for m, r in acked.items() if m in first),
    )


def _observed(fault: FaultRecord) -> bool:
    """An exit the campaign saw, not a fault it injected (`<child>_exit`)."""
    return fault.kind.endswith("_exit")


def _windows(faults: list[FaultRecord], window: float) -> list[tuple[float, float, str]]:
    outages = [f for f in faults if f.kind in OUTAGES]
    windows = []
    for fault in faults:
        if not _ambiguous(fault):
            continue
        start = fault.start - window
        if fault.kind in WORKER_FAULTS:
            for outage in outages:
                if outage.start <= fault.start and outage.end + window >= start:
                    start = min(start, outage.start - window)
        windows.append((start, fault.end + window, fault.kind))
    return windows


def _ambiguous(fault: FaultRecord) -> bool:
    held = fault.kind in AMBIGUOUS_WHEN_HELD and "hang_ms" in fault.detail
    return held or fault.kind in AMBIGUOUS


def _explained_by(call: ProviderCall, windows: list[tuple[float, float, str]]) -> str | None:
    for start, end, kind in windows:
        if call.ended_at >= start and call.received_at <= end:
            return kind
    return None


def _order_violations(
    acked: Iterable[ClientRecord], first: dict[MessageKey, ProviderCall]
) -> list[OrderViolation]:
    by_key: dict[str, list[ClientRecord]] = defaultdict(list)
    for record in acked:
        by_key[record.key].append(record)
    found = []
    for key, records in sorted(by_key.items()):
        by_ack = sorted(records, key=lambda r: r.answered)
        latest: tuple[float, int] | None = None  # (first accept, n) of acked-before records
        i = 0
        for later in sorted(records, key=lambda r: r.sent):
            while i < len(by_ack) and by_ack[i].answered < later.sent:
                earlier = first.get((key, by_ack[i].n))
                if earlier is not None and (latest is None or earlier.received_at > latest[0]):
                    latest = (earlier.received_at, by_ack[i].n)
                i += 1
            mine = first.get((key, later.n))
            if mine is not None and latest is not None and mine.received_at < latest[0]:
                found.append(OrderViolation(key, latest[1], later.n))
    return found


def _overlaps(calls: list[ProviderCall]) -> list[Overlap]:
    """Calls sorted by arrival; per key, keep the calls still open (message -> latest end)."""
    open_calls: dict[str, dict[int, float]] = defaultdict(dict)
    found = []
    for call in calls:
        still_open = open_calls[call.key]
        for n in [n for n, end in still_open.items() if end <= call.received_at]:
            del still_open[n]
        others = [(end, n) for n, end in still_open.items() if n != call.n]
        if others:
            found.append(Overlap(call.key, max(others)[1], call.n, call.received_at))
        still_open[call.n] = max(still_open.get(call.n, call.ended_at), call.ended_at)
    return found
