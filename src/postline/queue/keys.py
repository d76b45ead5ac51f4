"""Every Redis key Postline uses, named here and nowhere else.

Streams and the delay set are named by SPEC 4; the others are internal.

| key                       | type   | what                                        |
|---------------------------|--------|---------------------------------------------|
| `message_queue:<channel>` | stream | one per channel (`stream_of`), hints        |
| `message_queue:retry`     | zset   | the delay set: due-later retries and        |
|                           |        | scheduled sends, score = due time           |
| `message_queue:dead`      | stream | dead letters                                |
| `postline:queued`         | hash   | message id -> `<stream> <entry id>`, its    |
|                           |        | latest stream entry                         |
| `postline:worker:<name>`  | string | a worker's heartbeat (JSON), with a TTL     |
| `postline:reconciler`     | string | the reconcile lock (owner, PX)              |
| `postline:metrics:totals` | zset   | the newest outcome totals reading the API   |
|                           |        | processes share, score = its snapshot time  |
| `postline:pace:tat:<b>`   | string | a pacing bucket's TAT (ms): a sender's, |
|                           |        | or `account:<provider account>`             |
| `postline:pace:waiting`   | zset   | pacing reservations, score = slot (ms):     |
|                           |        | `<class>|<sender>|<message id>`             |
| `postline:pace:inflight:<a>` | zset | an account's concurrency slots, score =    |
|                           |        | lease end: `<worker>|<message id>`          |
| `postline:stats:activity` | string | the dashboard's activity reading (JSON),  |
|                           |        | shared by the API processes, short TTL      |
| `postline:route:<r>:circuit` | hash | route r's circuit: state, since, version  |
|                           |        | (`domain/routes.py`)                        |
| `postline:route:<r>:w:<t>` | hash  | route r's outcomes (`ok`, `failed`) in the  |
|                           |        | window bucket starting at unix second t     |
| `postline:route:<r>:probe:<v>` | hash | half-open spell v: probe tokens taken  |
|                           |        | (`taken`) and their results (`ok`, `failed`) |
| `chaos:sentinel`          | string | written by the chaos campaign's read-only   |
|                           |        | fault to see whether the data survived      |

`workers` (`CONSUMER_GROUP`) is the consumer group on every channel stream:
a name inside a stream, not a key, so a script gets it in ARGV.

Redis Cluster: a script must receive every key it touches in KEYS (they do,
see `scripts`), and those keys must hash to one slot, as must the streams
one XREADGROUP reads. That needs one hash tag in every queue key (say
`message_queue:{postline}:sms`), which renames the keys SPEC 4 names; until
then Postline needs one Redis (with replicas).
"""

from __future__ import annotations

from postline.domain.channels import Channel

QUEUE_PREFIX = "message_queue:"
RETRY_QUEUE = QUEUE_PREFIX + "retry"
DEAD_QUEUE = QUEUE_PREFIX + "dead"
CONSUMER_GROUP = "workers"

QUEUED_INDEX = "postline:queued"
HEARTBEAT_PREFIX = "postline:worker:"
RECONCILE_LOCK = "postline:reconciler"
TOTALS_READING = "postline:metrics:totals"
ACTIVITY_READING = "postline:stats:activity"
CHAOS_SENTINEL = "chaos:sentinel"
ROUTE_PREFIX = "postline:route:"
PACE_PREFIX = "postline:pace:"
PACE_WAITING = PACE_PREFIX + "waiting"


def stream_of(channel: Channel) -> str:
    return QUEUE_PREFIX + channel.value


CHANNEL_STREAMS: tuple[str, ...] = tuple(stream_of(c) for c in Channel)


def heartbeat(worker: str) -> str:
    return HEARTBEAT_PREFIX + worker


def route_circuit(route: str) -> str:
    return f"{ROUTE_PREFIX}{route}:circuit"


def route_bucket(route: str, start: int) -> str:
    return f"{ROUTE_PREFIX}{route}:w:{start}"


def route_probes(route: str, version: int) -> str:
    return f"{ROUTE_PREFIX}{route}:probe:{version}"


def pace_bucket(name: str) -> str:
    """A pacing bucket: a sender's (`+1555...`) or an account's (`account:...`)."""
    return PACE_PREFIX + "tat:" + name


def pace_account(account: str) -> str:
    """A provider account's bucket (a route's `account`, e.g. `twilio:AC...`):
    its TAT moves only for an account rate (SendGrid) and a 429's hold."""
    return pace_bucket("account:" + account)


def pace_inflight(account: str) -> str:
    """An account's concurrency slots."""
    return PACE_PREFIX + "inflight:" + account
