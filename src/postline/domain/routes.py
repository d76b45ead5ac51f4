"""Routes and their circuits: which route an attempt takes, and when a route is unhealthy.

A route is one provider account a channel can be sent through. Each channel
has its routes in order of preference (`route_plan`): SMS, MMS and WhatsApp
go through the primary Twilio account, else the backup one when it is
configured; email has SendGrid alone.

Each route has a circuit, shared by every process (stored in Redis, see
`postline.queue.routes`), decided here by pure functions:

- `closed`: the route takes traffic. It opens when, over the last
  `window_seconds` (and since it last closed), at least `min_requests`
  attempts were judged and the share of failures reached `threshold`.
- `open`: no traffic (unless every route of the channel is open: then the
  most preferred one is tried anyway, rather than sending nothing). After
  `open_seconds` it becomes half-open.
- `half_open`: up to `probes` fresh messages (never a retry) go through it;
  the first probe that succeeds closes it, any probe that fails opens it
  again. Probes that never report (their worker died) open it again after
  `probe_seconds`.
- After closing, traffic drifts back: the route's share of its channel's
  fresh messages grows linearly from nothing to all over `ramp_seconds`.
  Which messages make up that share is decided by each message's own draw
  (`draw_of`), so every process that asks where a message goes (pacing
  before the claim, the send after it) gets the same answer.

What counts as a failure (`health_of`): a timeout, a network error and a
5xx, which say the route is sick. A 429 counts for nothing (the route works
and asks to slow down; moving its traffic to the other account would only
double the pace). Any other answer, a permanent 4xx included, is a success:
the route answered.

Order is not decided here: an attempt takes one route, and the claim in
PostgreSQL keeps one attempt per ordering key at a time, so a message sent
on another route still waits for its key's earlier ones.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from postline.domain.channels import Channel
from postline.errors import PermanentProviderError, ProviderError, TransientProviderError

TWILIO = "twilio"
TWILIO_BACKUP = "twilio_backup"
SENDGRID = "sendgrid"


def route_plan(*, twilio_backup: bool) -> dict[Channel, tuple[str, ...]]:
    """Each channel's routes, most preferred first."""
    twilio = (TWILIO, TWILIO_BACKUP) if twilio_backup else (TWILIO,)
    return {
        Channel.SMS: twilio,
        Channel.MMS: twilio,
        Channel.WHATSAPP: twilio,
        Channel.EMAIL: (SENDGRID,),
    }


def route_names(plan: Mapping[Channel, Sequence[str]]) -> list[str]:
    """Every route of `plan`, each once, in first-seen order."""
    return list(dict.fromkeys(name for names in plan.values() for name in names))


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Health(StrEnum):
    """What one attempt says about its route."""

    OK = "ok"
    FAILED = "failed"
    THROTTLED = "throttled"  # a 429: counts for neither side


def health_of(error: ProviderError | None) -> Health:
    """The judgement of an attempt that ended with `error` (None: accepted)."""
    if error is None or isinstance(error, PermanentProviderError):
        return Health.OK
    assert isinstance(error, TransientProviderError)
    if error.status == 429:
        return Health.THROTTLED
    return Health.FAILED


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    window_seconds: float = 10.0
    threshold: float = 0.5
    min_requests: int = 20
    open_seconds: float = 15.0
    probes: int = 3
    probe_seconds: float = 15.0
    ramp_seconds: float = 30.0

    @property
    def bucket_seconds(self) -> int:
        """The window is kept in buckets of this many seconds (about ten of them)."""
        return max(1, int(self.window_seconds // 10))


@dataclass(frozen=True, slots=True)
class Circuit:
    """One route's circuit; `version` counts transitions (a compare-and-set fence)."""

    state: CircuitState = CircuitState.CLOSED
    since: float = 0.0  # unix seconds of the last transition
    version: int = 0


@dataclass(frozen=True, slots=True)
class Tally:
    ok: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.ok + other.ok, self.failed + other.failed)

    def error_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def bucket_of(moment: float, policy: CircuitPolicy) -> int:
    """The start (unix seconds) of the bucket `moment` falls in."""
    size = policy.bucket_seconds
    return int(moment // size) * size


def window_buckets(now: float, policy: CircuitPolicy) -> list[int]:
    """The buckets the window covers at `now`, oldest first (the current one included)."""
    size = policy.bucket_seconds
    last = bucket_of(now, policy)
    count = math.ceil(policy.window_seconds / size) + 1
    return [last - size * i for i in reversed(range(count))]


def window_tally(
    buckets: Mapping[int, Tally], *, circuit: Circuit, now: float, policy: CircuitPolicy
) -> Tally:
    """The outcomes that count now: inside the window, and since the circuit last changed
    (a bucket that began before that change is left out, so old failures never
    reopen a route that has just closed)."""
    total = Tally()
    for start in window_buckets(now, policy):
        if start >= circuit.since - 1e-9 and start in buckets:
            total = total + buckets[start]
    return total


def advance(
    circuit: Circuit, *, window: Tally, probes: Tally, now: float, policy: CircuitPolicy
) -> Circuit:
    """The circuit after looking at the outcomes: `window` (see `window_tally`) and
    `probes`, the results of this half-open spell's probes."""

    def to(state: CircuitState) -> Circuit:
        return Circuit(state, now, circuit.version + 1)

    if circuit.state is CircuitState.CLOSED:
        tripped = window.total >= policy.min_requests and window.error_rate() >= policy.threshold
        return to(CircuitState.OPEN) if tripped else circuit
    if circuit.state is CircuitState.OPEN:
        cooled = now - circuit.since >= policy.open_seconds
        return to(CircuitState.HALF_OPEN) if cooled else circuit
    if probes.failed:
        return to(CircuitState.OPEN)
    if probes.ok:
        return to(CircuitState.CLOSED)
    if now - circuit.since >= policy.probe_seconds:
        return to(CircuitState.OPEN)  # the probes never reported: try again later
    return circuit


def share(circuit: Circuit, *, now: float, policy: CircuitPolicy) -> float:
    """The share of fresh traffic a closed route takes (it ramps up after closing)."""
    if circuit.state is not CircuitState.CLOSED:
        return 0.0
    if circuit.version == 0 or policy.ramp_seconds <= 0:
        return 1.0
    return min(1.0, max(0.0, (now - circuit.since) / policy.ramp_seconds))


def draw_of(message_id: uuid.UUID) -> float:
    """A message's draw for the ramp, uniform in [0, 1) and the same each time
    it is asked: pacing charges the account of the route the send will take."""
    digest = hashlib.blake2b(message_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


@dataclass(frozen=True, slots=True)
class Pick:
    """A route to try, in order; `probe`: only with a half-open probe token."""

    route: str
    probe: bool = False


def candidates(
    routes: Sequence[tuple[str, Circuit]],
    *,
    now: float,
    policy: CircuitPolicy,
    draw: float,
    retry_of: str | None = None,
) -> list[Pick]:
    """The routes an attempt may take, best first; the caller takes the first it may.

    `draw` is uniform in [0, 1) (the ramp). `retry_of` is the route the
    message's last attempt failed on: a retry goes elsewhere while another
    route is closed, and never serves as a probe (a probe that fails costs
    its message an attempt; a fresh message has the budget to spare). The
    last candidate is never a probe, so the list always ends in a route.
    """
    ordered = list(routes)
    if retry_of is not None:
        ordered.sort(key=lambda item: item[0] == retry_of)  # stable: the rest keep their order
    picks: list[Pick] = []
    closed = [name for name, c in ordered if c.state is CircuitState.CLOSED]
    for name, circuit in ordered:
        if circuit.state is CircuitState.HALF_OPEN and retry_of is None:
            picks.append(Pick(name, probe=True))
        elif circuit.state is CircuitState.CLOSED:
            last_closed = name == closed[-1]
            if last_closed or draw < share(circuit, now=now, policy=policy):
                picks.append(Pick(name))
    if not any(not p.probe for p in picks):
        # Nothing closed: the most preferred route (for a retry: another one,
        # if there is one), rather than no send at all.
        picks.append(Pick(ordered[0][0]))
    return _first_plain_ends(picks)


def _first_plain_ends(picks: list[Pick]) -> list[Pick]:
    """Drops what follows the first non-probe pick: it would never be reached."""
    for i, pick in enumerate(picks):
        if not pick.probe:
            return picks[: i + 1]
    return picks  # pragma: no cover - candidates always appends a plain pick
