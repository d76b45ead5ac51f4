"""Did the features do their work? Figures from the provider's log and the stats samples.

Pure, like the checker, and never part of the verdict: a campaign with a
feature on says how much of it happened, so a pass cannot hide a feature
that never engaged (a backup nobody called, a rate nothing reached).

- **failover**: the provider calls and accepts of each Twilio account (the
  call log names it), and how often the stats saw the primary route's
  circuit open or half-open, and how many times it opened.
- **pacing**: how often the stats saw the paced sender with messages
  waiting for their slots, how many and how far ahead at most; the busiest
  `BUSIEST_SECONDS` of its provider calls against its rate (pacing lets a
  sender go at its rate, plus one message after an idle spell, or after
  Redis lost its buckets; a take-over of a stalled worker's send is not
  paced again); the most calls each Twilio account had open at once (the
  concurrency cap, plus take-overs); and the 429s the provider answered,
  each of which holds an account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from postline.chaos.records import ProviderCall

BUSIEST_SECONDS = 5.0
PRIMARY_ROUTE = "twilio"


def feature_figures(
    run: dict[str, Any], calls: Sequence[ProviderCall], samples: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The figures of each feature the run had on (none: an empty dict)."""
    answered = [s for s in samples if "error" not in s]
    figures: dict[str, Any] = {}
    if "failover" in run.get("features", ()):
        figures["failover"] = {
            "accounts": _by_account(calls, run.get("accounts", {})),
            "circuit": _circuit(answered, PRIMARY_ROUTE),
            "readings": len(answered),
        }
    if "pacing" in run.get("features", ()):
        paced = run["pacing"]
        mine = sorted(c.received_at for c in calls if c.sender == paced["sender"])
        busiest = _busiest(mine, BUSIEST_SECONDS)
        figures["pacing"] = {
            **paced,
            "readings": len(answered),
            **_waiting(answered, paced["sender"]),
            "calls": len(mine),
            "busiest_per_second": round(busiest / BUSIEST_SECONDS, 2),
            "in_flight": _most_in_flight(calls, run.get("accounts", {})),
            "throttled": sum(1 for c in calls if c.status == 429),
        }
    return figures


def observed(figures: dict[str, Any]) -> dict[str, bool]:
    """Per feature on, whether it visibly engaged: the backup accepted
    messages; the paced sender had messages waiting for a slot."""
    seen = {}
    if "failover" in figures:
        backup = figures["failover"]["accounts"].get("backup", {})
        seen["failover"] = backup.get("accepted", 0) > 0
    if "pacing" in figures:
        seen["pacing"] = figures["pacing"]["waiting_readings"] > 0
    return seen


def _by_account(calls: Iterable[ProviderCall], roles: dict[str, str]) -> dict[str, dict[str, int]]:
    names = {sid: role for role, sid in roles.items()}
    total: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    for call in calls:
        if call.account is None:
            continue
        name = names.get(call.account, call.account)
        total[name] += 1
        accepted[name] += call.accepted
    return {name: {"calls": total[name], "accepted": accepted[name]} for name in sorted(total)}


def _most_in_flight(calls: Iterable[ProviderCall], roles: dict[str, str]) -> dict[str, int]:
    """The most calls each Twilio account had open at once (its concurrency cap binding)."""
    names = {sid: role for role, sid in roles.items()}
    edges: dict[str, list[tuple[float, int]]] = {}
    for call in calls:
        if call.account is not None:
            name = names.get(call.account, call.account)
            edges.setdefault(name, []).extend(((call.received_at, 1), (call.ended_at, -1)))
    most = {}
    for name, marks in sorted(edges.items()):
        open_now = peak = 0
        for _, step in sorted(marks):  # at a tie an end (-1) comes first
            open_now += step
            peak = max(peak, open_now)
        most[name] = peak
    return most


def _circuit(samples: Iterable[dict[str, Any]], route: str) -> dict[str, int]:
    """Readings per state of `route`'s circuit, and the times it was seen opening."""
    states: Counter[str] = Counter()
    opened = 0
    last = "closed"
    for sample in samples:
        state = sample.get("routes", {}).get(route)
        if state is None:
            continue
        states[state] += 1
        opened += state == "open" and last == "closed"
        last = state
    return {"closed": states["closed"], "open": states["open"],
            "half_open": states["half_open"], "opened": opened}  # fmt: skip


def _waiting(samples: Iterable[dict[str, Any]], sender: str) -> dict[str, Any]:
    readings, most, ahead = 0, 0, 0.0
    for sample in samples:
        for row in sample.get("pacing", []):
            if row.get("sender") == sender and row.get("waiting", 0) > 0:
                readings += 1
                most = max(most, int(row["waiting"]))
                ahead = max(ahead, float(row.get("wait_seconds", 0.0)))
    return {"waiting_readings": readings, "most_waiting": most, "longest_wait_seconds": ahead}


def _busiest(times: Sequence[float], window: float) -> int:
    """The most of the sorted `times` within any `window` seconds."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most
