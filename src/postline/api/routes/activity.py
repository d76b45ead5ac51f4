"""`GET /api/v1/stats/activity`: what the dashboard draws (`postline.services.activity`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from postline.api.deps import AuthDep, ComponentsDep
from postline.api.responses import AUTHED, error_responses
from postline.services.activity import (
    ATTEMPTS_WINDOW_SECONDS,
    MAX_AGE_MS,
    POINTS,
    STEP_SECONDS,
    shared_activity,
)

router = APIRouter(prefix="/api/v1", tags=["operations"])

_SERIES = f"{POINTS} counts, one per {STEP_SECONDS} s bucket, oldest first."


class OutcomeSeries(BaseModel):
    """Attempt outcomes per bucket, from `start` on; the bucket in progress is not included."""

    sent: list[int] = Field(description=f"Messages that reached `sent`. {_SERIES}")
    failed: list[int] = Field(
        description=f"Messages that ended `failed` (attempts, or a receipt). {_SERIES}"
    )
    retried: list[int] = Field(
        description=f"Attempts that failed transiently and will be retried. {_SERIES}"
    )


class RatesNow(BaseModel):
    """Per second over the last complete bucket (the last value of each `total` series)."""

    sent_per_second: float = Field(description="Sends per second.")
    failed_per_second: float = Field(description="Failures per second.")
    retried_per_second: float = Field(description="Transient errors per second.")


class Latency(BaseModel):
    """From an attempt's `sending` event to its outcome event, in milliseconds."""

    p50: float = Field(description="Median.")
    p95: float = Field(description="95th percentile.")
    max: float = Field(description="Slowest attempt.")


class ProviderHealth(BaseModel):
    """One provider's attempts that ended in the last `attempts_window_seconds`."""

    attempts: int = Field(description="Attempts that ended (sent, retrying or failed).")
    errors: int = Field(description="Attempts that ended in an error (retrying or failed).")
    error_ratio: float | None = Field(description="`errors / attempts`; null without attempts.")
    latency_ms: Latency | None = Field(description="Null without attempts.")


class ActivityPublic(BaseModel):
    """The recent activity, as of `as_of`: one reading, shared by every API process."""

    as_of: str = Field(description="When the reading was taken, RFC 3339 in UTC.")
    start: str = Field(description="Where the first bucket starts, RFC 3339 in UTC.")
    step_seconds: int = Field(description="The width of a bucket, in seconds.")
    points: int = Field(description="Buckets in every series.")
    now: RatesNow = Field(description="The current rates: the last complete bucket.")
    total: OutcomeSeries = Field(description="All channels.")
    channels: dict[str, OutcomeSeries] = Field(description="Per channel (`sms`, ..., `email`).")
    providers: dict[str, OutcomeSeries] = Field(description="Per provider (`twilio`, `sendgrid`).")
    attempts_window_seconds: int = Field(description="The window of `provider_health`.")
    provider_health: dict[str, ProviderHealth] = Field(
        description="Per provider: error ratio and latency of its recent attempts."
    )
    oldest_pending_seconds: float = Field(
        description="How long the longest-waiting sendable message (pending, or a retry past "
        "due) has waited; 0 when none waits."
    )
    dead_letters: int = Field(
        description="Messages whose status is `failed` now: a retried message leaves the count."
    )


@router.get(
    "/stats/activity",
    response_model=ActivityPublic,
    responses=error_responses(*AUTHED),
    summary="Recent activity (what the dashboard draws)",
    description=f"Rates over the last {POINTS * STEP_SECONDS // 60} minutes per channel and "
    f"provider, provider latency and errors over the last {ATTEMPTS_WINDOW_SECONDS} s, the "
    f"oldest waiting message and the dead letters. A reading is shared for {MAX_AGE_MS} ms "
    "by every API process, so polling it often costs little.",
)
async def activity(parts: ComponentsDep, _auth: AuthDep) -> Response:
    reading = await shared_activity(parts.pool, parts.queue)
    return Response(reading, media_type="application/json")
