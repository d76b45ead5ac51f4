"""Health and metrics: liveness, readiness and Prometheus text (none of them behind auth).

- `/health/live`: the process answers; touches nothing else, so a restart
  policy never kills an API that is only waiting for PostgreSQL or Redis;
- `/health`: readiness, 503 naming the dependency that is down;
- `/metrics`: see `postline.metrics` for why counters and gauges are served
  from different places.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Literal, TypeVar

import orjson
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.responses import Response

from postline.api.deps import ComponentsDep
from postline.api.schemas import HealthPublic
from postline.api.totals import outcome_totals
from postline.metrics import scrape_gauges, scrape_registry
from postline.services.stats import RouteView, read_routes
from postline.store.stats import StatsStore
from postline.store.suppressions import SuppressionStore

router = APIRouter(tags=["operations"])
log = logging.getLogger("postline.api")

PROBE_TIMEOUT = 2.0
#: Counting the outcome totals reads the whole events table (then is reused, see `totals`).
TOTALS_TIMEOUT = 5.0
T = TypeVar("T")

_LIVE = orjson.dumps({"status": "ok"})


class LivePublic(BaseModel):
    """The liveness answer: always ok when the process can answer at all."""

    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


async def _probe(check: asyncio.Future[object] | object) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT)  # type: ignore[arg-type]
    except Exception:  # any failure of the probe means the dependency is down
        return "down"
    return "ok"


@router.get("/health/live", response_model=LivePublic)
async def live() -> Response:
    """200 whenever this process can answer; never touches PostgreSQL or Redis."""
    return Response(_LIVE, media_type="application/json")


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def health(parts: ComponentsDep) -> Response:
    """Readiness: 200 when PostgreSQL and Redis answer; 503 naming what is down."""
    database, redis = await asyncio.gather(
        _probe(parts.pool.fetchval("SELECT 1")), _probe(parts.redis.ping())
    )
    ok = database == "ok" and redis == "ok"
    body = {"status": "ok" if ok else "degraded", "database": database, "redis": redis}
    return Response(
        orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json"
    )


async def _reading(what: str, read: Awaitable[T], timeout: float = PROBE_TIMEOUT) -> T | None:
    """`read`, or None when its server does not answer in time."""
    try:
        return await asyncio.wait_for(read, timeout)
    except Exception as exc:  # metrics still answer with what is known when a server is down
        log.warning("metrics: %s not read: %r", what, exc)
        return None


@router.get("/metrics", include_in_schema=False)
async def metrics(parts: ComponentsDep) -> Response:
    # The same readings as /api/v1/stats (postline.services.stats), so both show one number.
    stats = StatsStore(parts.pool)
    (queues, counts, totals, oldest), (workers, routes, paced, suppressed) = await asyncio.gather(
        asyncio.gather(
            _reading("queue depths", parts.queue.depths()),
            _reading("status counts", stats.status_counts()),
            _reading("outcome totals", outcome_totals(stats, parts.queue), TOTALS_TIMEOUT),
            _reading("oldest pending", stats.oldest_waiting_seconds()),
        ),
        asyncio.gather(
            _reading("live workers", parts.queue.live_workers()),
            _reading("route health", read_routes(parts.queue, RouteView.of(parts.settings))),
            _reading("pacing", parts.queue.paced()),
            _reading("suppressions", SuppressionStore(parts.pool).counts()),
        ),
    )
    gauges = scrape_gauges(
        queues=queues,
        statuses=counts.counts if counts else None,
        totals=totals,
        oldest_pending=oldest,
        workers=len(workers) if workers is not None else None,
        routes={
            name: (route.state, route.failed / route.attempts if route.attempts else 0.0)
            for name, route in (routes or {}).items()
        },
        paced=paced,
        suppressions=suppressed,
    )
    registry = scrape_registry(parts.metrics.collector(), gauges)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
