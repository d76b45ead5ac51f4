"""`GET /api/v1/stats`: queues, messages per status, live workers, throughput (SPEC 3.1)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from postline.api.deps import AuthDep, ComponentsDep
from postline.api.errors import ApiError
from postline.api.schemas import ErrorEnvelope
from postline.services.stats import DependencyUnavailable, collect_stats

router = APIRouter(prefix="/api/v1", tags=["operations"])

# Short: the dashboard polls every 1.5 s and should say "down" rather than hang.
STATS_TIMEOUT = 2.0


class QueuePublic(BaseModel):
    depth: int
    pending: int


class WorkerPublic(BaseModel):
    name: str
    last_heartbeat: str
    inflight: int


class ThroughputPublic(BaseModel):
    sent_per_second: float
    failed_per_second: float


class StatsPublic(BaseModel):
    """Counts of finished statuses may be planner estimates on very large tables."""

    queues: dict[str, QueuePublic]
    messages: dict[str, int]
    workers: list[WorkerPublic]
    throughput: ThroughputPublic


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (401, 503)}


def unavailable(exc: DependencyUnavailable) -> ApiError:
    """503 naming what is down, as `/health` does (`database_unavailable`, ...)."""
    return ApiError(503, str(exc), code="_and_".join(exc.names) + "_unavailable")


@router.get("/stats", response_model=StatsPublic, responses=ERRORS)
async def stats(parts: ComponentsDep, _auth: AuthDep) -> Response:
    """One reading of the operations numbers; throughput is over the last minute."""
    try:
        reading = await collect_stats(pool=parts.pool, queue=parts.queue, max_wait=STATS_TIMEOUT)
    except DependencyUnavailable as exc:
        raise unavailable(exc) from exc
    return Response(orjson.dumps(reading.public()), media_type="application/json")
