"""`GET /api/v1/stats`: queues, messages per status, live workers, throughput
(SPEC 3.1), and the senders whose messages wait for their pace."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from postline.api.deps import AuthDep, ComponentsDep
from postline.api.errors import ApiError
from postline.api.responses import error_responses
from postline.services.stats import DependencyUnavailable, RouteView, collect_stats

router = APIRouter(prefix="/api/v1", tags=["operations"])

# Short: the dashboard polls every 1.5 s and should say "down" rather than hang.
STATS_TIMEOUT = 2.0


class QueuePublic(BaseModel):
    """One Redis stream."""

    depth: int = Field(description="Entries in the stream (XLEN): the backlog.")
    pending: int = Field(description="Entries a worker holds and has not acknowledged yet.")


class WorkerPublic(BaseModel):
    """A worker that sent a heartbeat recently."""

    name: str = Field(description="The worker's name (host and process).")
    last_heartbeat: str = Field(description="Its last heartbeat, RFC 3339 in UTC.")
    inflight: int = Field(description="Sends it had in flight then.")


class ThroughputPublic(BaseModel):
    """Rates over the last minute."""

    sent_per_second: float = Field(description="Messages that reached `sent`, per second.")
    failed_per_second: float = Field(description="Messages that ended `failed`, per second.")


class RoutePublic(BaseModel):
    """One route's circuit, as every worker shares it (README, Provider failover)."""

    state: str = Field(description="`closed` (takes traffic), `open` or `half_open` (probed).")
    since: str | None = Field(description="When the circuit last changed; null: never.")
    attempts: int = Field(description="Attempts its window counts now (429s left out).")
    failed: int = Field(description="Of those, failed: 5xx, timeouts, network errors.")
    error_rate: float = Field(description="failed / attempts, 0 without attempts.")


class PacedSenderPublic(BaseModel):
    """A sender whose messages wait for their pace (README, "Pacing")."""

    sender: str = Field(
        description="The sender (`+1555...`, `whatsapp:+1555...`); for email, the "
        "SendGrid account (`sendgrid:<key fingerprint>`), which is what email is paced by."
    )
    class_: str = Field(
        alias="class",
        description="Its sender class: long_code, toll_free, short_code, whatsapp or email.",
    )
    waiting: int = Field(description="Messages waiting in the delay set for their slot.")
    wait_seconds: float = Field(description="How long until the last of them may go.")


class PacingPublic(BaseModel):
    """Messages waiting for their sender's or account's pace; empty while pacing is off."""

    senders: list[PacedSenderPublic] = Field(description="Per sender, busiest first.")


class SuppressionsPublic(BaseModel):
    """Active suppressions (README, "Suppression")."""

    total: int = Field(description="Recipients suppressed now, counting each sender scope.")
    by_channel: dict[str, int] = Field(description="Per channel: `sms`, `whatsapp`, `email`.")
    by_reason: dict[str, int] = Field(
        description="Per reason: `bounce`, `spamreport`, `unsubscribe`, `opt_out`, `manual`."
    )


class StatsPublic(BaseModel):
    """Counts of finished statuses may be planner estimates on very large tables."""

    queues: dict[str, QueuePublic] = Field(
        description="Per stream (`message_queue:sms`, ..., `message_queue:dead`)."
    )
    messages: dict[str, int] = Field(description="Stored messages per status.")
    workers: list[WorkerPublic] = Field(description="Live workers.")
    throughput: ThroughputPublic = Field(description="Over the last minute.")
    routes: dict[str, RoutePublic] = Field(
        description="Per route (`twilio`, `twilio_backup` when configured, `sendgrid`): "
        "its circuit, shared by every worker (README, Provider failover)."
    )
    pacing: PacingPublic = Field(description="Per sender: messages waiting for their pace.")
    suppressions: SuppressionsPublic = Field(description="Recipients Postline will not send to.")


ERRORS = error_responses(
    "unauthorized", "database_unavailable", "redis_unavailable", "database_and_redis_unavailable"
)


def unavailable(exc: DependencyUnavailable) -> ApiError:
    """503 naming what is down, as `/health` does (`database_unavailable`, ...)."""
    return ApiError(503, str(exc), code="_and_".join(exc.names) + "_unavailable")


@router.get("/stats", response_model=StatsPublic, responses=ERRORS)
async def stats(parts: ComponentsDep, _auth: AuthDep) -> Response:
    """One reading of the operations numbers; throughput is over the last minute."""
    try:
        reading = await collect_stats(
            pool=parts.pool,
            queue=parts.queue,
            max_wait=STATS_TIMEOUT,
            routes=RouteView.of(parts.settings),
        )
    except DependencyUnavailable as exc:
        raise unavailable(exc) from exc
    return Response(orjson.dumps(reading.public()), media_type="application/json")
