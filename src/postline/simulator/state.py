"""The simulator's shared state: knobs, scripts, random source and request log.

One `SimulatorState` lives per app. Provider handlers ask it what to do with
a request (`plan`) and tell it what they answered (`record`); the `/_sim`
control routes read and reset it. Everything runs on one event loop, so
nothing here needs a lock.

Recording is kept cheap because it sits on the hot path: a handler appends a
small dict to a bounded deque and bumps three counters. Formatting (RFC 3339
timestamps, filtering) happens only when someone reads the log.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from postline.simulator import faults
from postline.simulator.calllog import CallLog
from postline.simulator.clock import rfc3339
from postline.simulator.config import SimulatorConfig
from postline.simulator.scripts import ScriptBook, ScriptItem

Record = dict[str, Any]

_RANDOM_500 = ScriptItem(500)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one provider request before answering it normally.

    `fault` is None for "answer normally" and otherwise the error answer to
    give instead; `delay` is in seconds; `receipt` is the scripted delivery
    outcome (None: the configured one). `hang` and `after_accept` are the
    ambiguous-outcome faults of `faults.py`.
    """

    delay: float
    fault: ScriptItem | None
    receipt: str | None = None
    # Seconds of `delay` that are a hang (the `hang_rate` knob), not latency.
    hang: float = 0.0
    # RESET or ACCEPTED_ERROR: what follows acceptance instead of the answer.
    after_accept: str | None = None


_NOTHING = Plan(0.0, None)


class SimulatorState:
    """Mutable state shared by the provider endpoints and the control routes."""

    def __init__(self, config: SimulatorConfig, call_log: CallLog | None = None) -> None:
        self.config = config
        self.call_log = call_log
        self.rng = random.Random(config.seed)
        self.scripts = ScriptBook()
        self._log: deque[Record] = deque(maxlen=config.keep_requests)
        self._seq = 0
        self.received = 0
        self.by_provider: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        # Provider requests being handled now, and the peak since the last
        # clear: how a test sees the concurrency a worker really achieved.
        self.in_flight = 0
        self.max_in_flight = 0
        self.abandoned = 0  # calls whose client left before an answer was decided

    def reseed(self) -> None:
        """Restart the random source from `config.seed` (fresh entropy when None)."""
        self.rng.seed(self.config.seed)

    # -- request path ---------------------------------------------------------

    def plan(self, to: str | None) -> Plan:
        """Decide latency and fault for a request to `to`, consuming a script item."""
        config = self.config
        item = self.scripts.pop(to) if self.scripts else None
        if item is None and not (
            config.latency_ms
            or config.latency_jitter_ms
            or config.error_rate
            or config.rate_429
            or config.hang_rate
            or config.reset_rate
            or config.accepted_error_rate
        ):
            return _NOTHING
        if item is None:
            delay = self._latency_seconds()
            fault = self._random_fault()
            # Drawn after the older knobs, so seeded runs without them replay unchanged.
            hang = self._hang_seconds()
            after = self._after_accept() if fault is None else None
            return Plan(delay + hang, fault, None, hang, after)
        # A scripted item overrides the random knobs for this one request.
        latency = item.latency_ms
        delay = latency / 1000.0 if latency is not None else self._latency_seconds()
        fault = None if item.is_success else item
        if fault is not None and fault.status == 429 and fault.retry_after is None:
            fault = dataclasses.replace(fault, retry_after=config.retry_after_seconds)
        return Plan(delay, fault, item.receipt)

    def _hang_seconds(self) -> float:
        config = self.config
        if config.hang_rate and self.rng.random() < config.hang_rate:
            return config.hang_ms / 1000.0
        return 0.0

    def _after_accept(self) -> str | None:
        config = self.config
        if not (config.reset_rate or config.accepted_error_rate):
            return None
        draw = self.rng.random()  # one draw for both, as for the error rates
        if draw < config.reset_rate:
            return faults.RESET
        if draw < config.reset_rate + config.accepted_error_rate:
            return faults.ACCEPTED_ERROR
        return None

    def _latency_seconds(self) -> float:
        config = self.config
        latency = config.latency_ms
        if config.latency_jitter_ms:
            jitter = config.latency_jitter_ms
            latency = max(0.0, latency + self.rng.uniform(-jitter, jitter))
        return latency / 1000.0

    def _random_fault(self) -> ScriptItem | None:
        config = self.config
        if not (config.error_rate or config.rate_429):
            return None
        # One draw for both knobs, so error_rate=0.1 + rate_429=0.2 means
        # exactly 10 % 500s and 20 % 429s rather than overlapping odds.
        draw = self.rng.random()
        if draw < config.error_rate:
            return _RANDOM_500
        if draw < config.error_rate + config.rate_429:
            return ScriptItem(429, retry_after=config.retry_after_seconds)
        return None

    def enter(self) -> None:
        """A provider request started; pair with `leave` in a `finally`."""
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def leave(self) -> None:
        self.in_flight -= 1

    def new_hex_id(self) -> str:
        """32 lowercase hex digits, the tail of a Twilio SID."""
        return f"{self.rng.getrandbits(128):032x}"

    def new_sendgrid_id(self) -> str:
        """A 22-character URL-safe id shaped like SendGrid's X-Message-Id."""
        return base64.urlsafe_b64encode(self.rng.randbytes(16)).rstrip(b"=").decode()

    def record(self, record: Record) -> None:
        """Log one finished provider call (in memory, and durably when configured).

        `outcome` defaults from `status` (see `faults.outcome_for`). A call
        whose client left before any decision (`client_gone`, no status) goes
        only to the durable log and the `abandoned` count: the inspection log
        keeps holding only decided calls, each with an integer status.
        """
        record.setdefault("ended_at", time.time())
        outcome = record.setdefault("outcome", faults.outcome_for(record["status"]))
        record["accepted"] = outcome in faults.ACCEPTING
        record["answered"] = outcome not in (faults.RESET, faults.CLIENT_GONE)
        self._seq += 1
        record["seq"] = self._seq
        if self.call_log is not None:
            self.call_log.write(record)
        if outcome == faults.CLIENT_GONE:
            self.abandoned += 1
            return
        log = self._log
        if log.maxlen != self.config.keep_requests:
            # keep_requests can change at runtime; keep the newest entries.
            log = self._log = deque(log, maxlen=self.config.keep_requests)
        log.append(record)
        self.received += 1
        provider = record["provider"]
        status = record["status"]
        self.by_provider[provider] = self.by_provider.get(provider, 0) + 1
        self.by_status[status] = self.by_status.get(status, 0) + 1

    # -- inspection -----------------------------------------------------------

    def requests(
        self,
        *,
        to: str | None = None,
        provider: str | None = None,
        since_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Logged requests, oldest first, as JSON-ready copies.

        `since_seq` keeps requests with a larger `seq`; `limit` keeps the
        first (oldest) matches, so `since_seq` + `limit` pages forward.
        """
        selected: Iterable[Record] = self._log
        if since_seq is not None:
            selected = (r for r in selected if r["seq"] > since_seq)
        if provider is not None:
            selected = (r for r in selected if r["provider"] == provider)
        if to is not None:
            wanted = to.lower() if "@" in to else to
            selected = (r for r in selected if _recipient_matches(r["to"], wanted))
        out: list[Record] = []
        for record in selected:
            if limit is not None and len(out) >= limit:
                break
            out.append(
                {
                    **record,
                    "received_at": rfc3339(record["received_at"]),
                    "ended_at": rfc3339(record["ended_at"]),
                }
            )
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "abandoned": self.abandoned,
            "by_provider": dict(self.by_provider),
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
        }

    def clear_requests(self) -> None:
        """Empty the log and counters. `seq` keeps counting so pollers never go back."""
        self._log.clear()
        self.received = 0
        self.by_provider.clear()
        self.by_status.clear()
        self.max_in_flight = self.in_flight
        self.abandoned = 0


def _recipient_matches(recorded: object, wanted: str) -> bool:
    if not isinstance(recorded, str):
        return False
    return (recorded.lower() if "@" in wanted else recorded) == wanted
