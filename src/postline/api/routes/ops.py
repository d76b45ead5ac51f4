"""Operations: health and Prometheus metrics."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from postline.api.deps import ComponentsDep
from postline.api.schemas import HealthPublic

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT = 2.0


async def _probe(check: asyncio.Future[object] | object) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT)  # type: ignore[arg-type]
    except Exception:  # any failure of the probe means the dependency is down
        return "down"
    return "ok"


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def health(parts: ComponentsDep) -> Response:
    """200 when PostgreSQL and Redis answer; 503 naming what is down."""
    database, redis = await asyncio.gather(
        _probe(parts.pool.fetchval("SELECT 1")), _probe(parts.redis.ping())
    )
    ok = database == "ok" and redis == "ok"
    body = {"status": "ok" if ok else "degraded", "database": database, "redis": redis}
    return Response(
        orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json"
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(parts: ComponentsDep) -> Response:
    try:
        depths = await asyncio.wait_for(parts.queue.depths(), PROBE_TIMEOUT)
    except Exception:  # metrics still answer with what is known when Redis is down
        depths = {}
    for stream, numbers in depths.items():
        parts.metrics.queue_depth.labels(stream).set(numbers["depth"])
        parts.metrics.queue_pending.labels(stream).set(numbers["pending"])
    try:
        counts = await asyncio.wait_for(
            parts.pool.fetch("SELECT status, count(*) AS n FROM messages GROUP BY status"),
            PROBE_TIMEOUT,
        )
        for row in counts:
            parts.metrics.messages.labels(row["status"]).set(row["n"])
    except Exception:  # noqa: S110 - the database being down must not hide the other metrics
        pass
    return Response(generate_latest(parts.metrics.registry), media_type=CONTENT_TYPE_LATEST)
