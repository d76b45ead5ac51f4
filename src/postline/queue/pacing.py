"""Pacing buckets in Redis, shared by every worker (README, "Pacing").

One script call per batch takes slots for many messages at once and returns
each one's wait; the rule is `domain.pacing.reserve` (GCRA with
reservations), timed by Redis's own clock (`TIME`), so workers on machines
whose clocks disagree still share one pace. A message told to wait holds a
reservation (`postline:pace:waiting`, score = its slot) and is not charged
again when it comes back; a duplicate entry of it finds the reservation and
is sent back to wait too, so duplicates never double a sender's rate.

The per-account concurrency cap is a sorted set of slots whose score is a
lease end: a worker that dies without giving its slots back loses them when
the lease runs out (every call first drops expired slots).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from postline.domain.pacing import Pace
from postline.queue.keys import PACE_WAITING, pace_account, pace_bucket, pace_inflight

#: A slot due this soon is used now: a trip through the delay set (whose
#: promote loop runs every 0.2 s) would cost more than the wait. Slots stay
#: one interval apart, so the rate is unchanged; a send is at most this early.
EARLY_MS = 10

#: A reservation nobody came back for (the message was cancelled) is dropped
#: after this long.
FORGET_MS = 3_600_000

# KEYS[1]: the reservations, KEYS[2..]: buckets and concurrency sets.
# ARGV[1]: concurrency lease (ms), ARGV[2]: wait when the account is at its
# cap (ms), ARGV[3]: how old a forgotten reservation is dropped (ms),
# ARGV[4]: how early a slot may be used (ms), then repeated octets:
# reservation member, concurrency member, KEYS index of the sender bucket
# (0: none) and its interval (ms), of the account bucket and its interval,
# of the concurrency set (0: none) and the cap. Returns each message's wait
# in ms (0: send now, its slot taken).
PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, busy, early = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
-- Each bucket's TAT and each set's size are read once and written once per call.
local tats, moved, counts, waits = {}, {}, {}, {}
local function tat(k)
  if tats[k] == nil then tats[k] = tonumber(redis.call('GET', KEYS[k]) or '0') end
  return tats[k]
end
local function count(k)
  if counts[k] == nil then
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
    counts[k] = redis.call('ZCARD', KEYS[k])
  end
  return counts[k]
end
for i = 5, #ARGV, 8 do
  local member, held = ARGV[i], ARGV[i + 1]
  local sk, si = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local ak, ai = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local ck, cap = tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  local wait = 0
  local reserved = redis.call('ZSCORE', KEYS[1], member)
  if reserved and tonumber(reserved) > now + early then
    wait = tonumber(reserved) - now
  else
    if ck > 0 and count(ck) >= cap and not redis.call('ZSCORE', KEYS[ck], held) then
      wait = busy
    end
    if wait == 0 and not reserved then
      local slot = now
      if sk > 0 then slot = math.max(slot, tat(sk)) end
      if ak > 0 then slot = math.max(slot, tat(ak)) end
      if sk > 0 then tats[sk] = slot + si; moved[sk] = true end
      if ak > 0 and ai > 0 then tats[ak] = slot + ai; moved[ak] = true end
      if slot > now + early then
        redis.call('ZADD', KEYS[1], string.format('%.3f', slot), member)
        wait = slot - now
      end
    end
    if wait == 0 then
      if reserved then redis.call('ZREM', KEYS[1], member) end
      if ck > 0 then counts[ck] = count(ck) + redis.call('ZADD', KEYS[ck], now + lease, held) end
    end
  end
  waits[#waits + 1] = math.ceil(wait)
end
for k in pairs(moved) do
  redis.call('SET', KEYS[k], string.format('%.3f', tats[k]), 'PX', math.ceil(tats[k] - now) + 60000)
end
return waits
"""

# KEYS: buckets and concurrency sets. ARGV: repeated triples: `r` (a refund:
# KEYS index of a bucket, its interval in ms) or `x` (a release: KEYS index
# of a concurrency set, the member). A refund moves the TAT back to now only
# if no later reservation was made on top of the refunded slot (TAT at most
# one interval ahead), so a refund never lets two messages share a slot
# (`domain.pacing.refund`).
GIVE_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 3 do
  local kind, k, v = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if kind == 'x' then
    redis.call('ZREM', KEYS[k], v)
  else
    local cur = redis.call('GET', KEYS[k])
    if cur and tonumber(cur) - tonumber(v) <= now then
      redis.call('SET', KEYS[k], string.format('%.3f', now), 'PX', 60000)
    end
  end
end
return 1
"""

# KEYS[1]: an account's bucket. ARGV[1]: how long to hold it (ms). Nothing
# of the account is sent before then (a 429's Retry-After); an earlier hold
# or reservation further out stays.
HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > cur then
  redis.call('SET', KEYS[1], string.format('%.3f', until_), 'PX', math.ceil(until_ - now) + 60000)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Ask:
    """One message asking its buckets for a slot."""

    message_id: str
    pace: Pace


@dataclass(frozen=True, slots=True)
class Waiting:
    """A sender's messages waiting for their slots: how many, and how far
    out the last one's slot is (seconds). An email sender is its account."""

    sender: str
    sender_class: str
    waiting: int
    wait_seconds: float

    def public(self) -> dict[str, str | int | float]:
        return {
            "sender": self.sender,
            "class": self.sender_class,
            "waiting": self.waiting,
            "wait_seconds": self.wait_seconds,
        }


class RedisPacer:
    """The shared buckets (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, *, lease_seconds: float, busy_ms: int = 100):
        self.client = client
        self._lease_ms = int(lease_seconds * 1000)
        self._busy_ms = busy_ms
        self._pace = client.register_script(PACE)
        self._give_back = client.register_script(GIVE_BACK)
        self._hold = client.register_script(HOLD)

    async def take(self, asks: Sequence[Ask], *, holder: str) -> list[int]:
        """Each message's wait in ms: 0 means its slots are taken, send it now."""
        if not asks:
            return []
        keys = _Keys()
        args: list[str | int | float] = [self._lease_ms, self._busy_ms, FORGET_MS, EARLY_MS]
        for ask in asks:
            pace = ask.pace
            args += [
                f"{pace.sender_class}|{pace.sender or pace.account}|{ask.message_id}",
                f"{holder}|{ask.message_id}",
                keys.at(pace_bucket(pace.sender)) if pace.sender else 0,
                pace.sender_interval_ms,
                keys.at(pace_account(pace.account)),
                pace.account_interval_ms,
                keys.at(pace_inflight(pace.account)) if pace.concurrency else 0,
                pace.concurrency,
            ]
        return [int(w) for w in await self._pace(keys=keys.names, args=args)]

    async def give_back(
        self, *, unused: Sequence[Ask] = (), done: Sequence[Ask] = (), holder: str
    ) -> None:
        """Refunds the slots of `unused` messages (a claim refused them) and
        frees the concurrency slots of `unused` and `done` ones."""
        keys = _Keys()
        args: list[str | int | float] = []
        for ask in unused:
            pace = ask.pace
            if pace.sender:
                args += ["r", keys.at(pace_bucket(pace.sender)), pace.sender_interval_ms]
            if pace.account_interval_ms:
                account = keys.at(pace_account(pace.account))
                args += ["r", account, pace.account_interval_ms]
        for ask in (*unused, *done):
            if ask.pace.concurrency:
                slots = keys.at(pace_inflight(ask.pace.account))
                args += ["x", slots, f"{holder}|{ask.message_id}"]
        if args:
            await self._give_back(keys=keys.names, args=args)

    async def hold(self, account: str, seconds: float) -> None:
        """Nothing of `account` goes for `seconds` (a 429 said so)."""
        await self._hold(keys=[pace_account(account)], args=[int(seconds * 1000)])


async def waiting(client: aioredis.Redis, *, limit: int = 100_000) -> list[Waiting]:
    """Per sender, the messages waiting for a slot (read from the reservations,
    at most `limit` of them), busiest first."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.zrange(PACE_WAITING, 0, limit - 1, withscores=True)
        (seconds, micros), members = await pipe.execute()
    now = seconds * 1000 + micros / 1000
    found: dict[tuple[str, str], list[float]] = {}
    for member, slot in members:
        kind, _, rest = str(member).partition("|")
        sender = rest.rpartition("|")[0]
        if slot > now:
            entry = found.setdefault((sender, kind), [0, 0.0])
            entry[0] += 1
            entry[1] = max(entry[1], (slot - now) / 1000)
    rows = [Waiting(s, k, int(n), round(w, 3)) for (s, k), (n, w) in found.items()]
    return sorted(rows, key=lambda row: (-row.waiting, row.sender))


class _Keys:
    """A script's KEYS: PACE_WAITING first, each other key once (1-based places)."""

    def __init__(self) -> None:
        self.names: list[str] = [PACE_WAITING]
        self._index: dict[str, int] = {}

    def at(self, key: str) -> int:
        if key not in self._index:
            self.names.append(key)
            self._index[key] = len(self.names)
        return self._index[key]
