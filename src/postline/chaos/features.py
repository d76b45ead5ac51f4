"""The features a campaign may turn on, and what each changes in the run.

Invariant: with no feature on, the campaign is the one it always was
(Postline's defaults: one Twilio route, pacing off; the same fault mix, so
the same schedule for a seed). A feature adds settings to every child, may
shape the load, and adds fault kinds of its own to the mix (`plan`):

- **failover**: a backup Twilio account, configured on both sides (the
  simulator accepts it, the API and workers route to it), with circuits
  that react within a few seconds (`ROUTE_*` below), so that a hold of the
  `route_down` fault sees a circuit open, half-open probes and the ramp back.
- **pacing**: `PACING_ENABLED`, with the keys of the load split between an
  unlimited sender and a paced one (`PACED_KEY_SHARE` of the keys). The
  paced sender's rate is `PACED_HEADROOM` times what the load offers it on
  average. It binds in bursts and whenever its keys have a backlog, which
  every outage leaves: their heads are then told to wait for slots. It
  cannot be lower: the paced keys catch up at the rate minus the offered
  one, while everything else catches up at the full speed of the workers,
  so under the full mix their backlog when the load ends is the larger. At
  4/3 of the offered rate a five-minute run of seed 41 left 1,585
  acknowledged messages behind the drain, at 3 times one. A rate below the
  offered one would leave a backlog growing with the duration, which no
  fixed drain takes. Every Twilio account has a concurrency cap that the
  provider's hangs fill; `provider_throttle` answers 429s that hold the
  accounts.

  The drain is `PACING_DRAIN_SECONDS` longer: each message of a paced key
  whose head has to wait makes a trip through the delay set (promoted by a
  loop every 0.2 s, then read, paced and claimed again), and in seed 41's
  drain such a key sent one message every 0.2 s, where an unpaced key with
  a backlog sent one every 25-40 ms. So the paced keys' backlog when the
  load ends (some 1,300 messages in all after that seed's last minute)
  took 26 s, at 50 messages/s, short of their rate of 75, where the others'
  took 12, and the default drain settled with 4 s to spare.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from postline.chaos.load import PACED_SENDER, SENDER
from postline.simulator.config import SIM_BACKUP_ACCOUNT_SID, SIM_BACKUP_AUTH_TOKEN

FEATURES = ("failover", "pacing")

#: Circuits of a failover campaign: a short window opens a failing route within
#: seconds, a short cool-down brings probes soon, a short ramp ends within a hold.
ROUTE_SETTINGS = {
    "ROUTE_WINDOW_SECONDS": "5",
    "ROUTE_OPEN_SECONDS": "5",
    "ROUTE_RAMP_SECONDS": "10",
}
PACED_KEY_SHARE = 0.1
PACED_HEADROOM = 5.0
#: Sends in flight per Twilio account: far above what a healthy provider needs
#: at the campaign's rate, well below what a hang holds (rate x provider timeout).
ACCOUNT_CONCURRENCY = 32
#: Added to the campaign's drain with pacing on (see the module docstring).
PACING_DRAIN_SECONDS = 30.0


@dataclass(frozen=True)
class Features:
    """Which features a campaign turns on."""

    failover: bool = False
    pacing: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Features:
        """`failover,pacing` (any order, blanks ignored; `none` or nothing: none)."""
        names = {part.strip() for part in (text or "").split(",")} - {"", "none"}
        unknown = names - set(FEATURES)
        if unknown:
            raise ValueError(
                f"unknown features: {', '.join(sorted(unknown))}; known: {', '.join(FEATURES)}"
            )
        return cls(failover="failover" in names, pacing="pacing" in names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in FEATURES if getattr(self, name))


@dataclass(frozen=True)
class PacedLoad:
    """How a pacing campaign splits its load: the first `keys` keys send
    from `sender`, paced at `rate`, which the load offers `offered` per second."""

    sender: str
    keys: int
    offered: float
    rate: float
    account_concurrency: int = ACCOUNT_CONCURRENCY


def paced_load(*, rate: float, keys: int) -> PacedLoad:
    paced = max(1, round(keys * PACED_KEY_SHARE))
    offered = rate * paced / keys
    return PacedLoad(PACED_SENDER, paced, round(offered, 2), round(offered * PACED_HEADROOM, 2))


def child_settings(features: Features, *, rate: float, keys: int) -> dict[str, str]:
    """What the features add to every child's environment."""
    settings: dict[str, str] = {}
    if features.failover:
        settings |= {
            "TWILIO_BACKUP_ACCOUNT_SID": SIM_BACKUP_ACCOUNT_SID,
            "TWILIO_BACKUP_AUTH_TOKEN": SIM_BACKUP_AUTH_TOKEN,
            **ROUTE_SETTINGS,
        }
    if features.pacing:
        paced = paced_load(rate=rate, keys=keys)
        # 0: the other sender has no limit (a long code would get 1/s by default).
        senders = {SENDER: 0, paced.sender: paced.rate}
        settings |= {
            "PACING_ENABLED": "true",
            "PACING_SENDERS": orjson.dumps(senders).decode(),
            "PACING_ACCOUNT_CONCURRENCY": str(paced.account_concurrency),
        }
    return settings
