"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postline import logs, tracing
from postline.api import docs, errors, openapi
from postline.api.callback_urls import check_inbound_callback_url
from postline.api.deps import Components
from postline.api.routes import (
    activity,
    collection,
    dashboard,
    health,
    inbound,
    messages,
    stats,
    suppressions,
    unsubscribe,
    webhooks,
)
from postline.metrics import ApiMetrics, WorkerMetrics
from postline.providers.registry import http_session
from postline.queue.streams import RedisQueue, connect
from postline.runtime import settle_garbage_collector
from postline.services.accepting import Acceptor, InlineSender
from postline.services.attempts import retry_policy
from postline.services.completion import Completer
from postline.services.pacing import build_pacing
from postline.services.receipts import ReceiptIntake
from postline.services.routing import build_router
from postline.settings import Settings
from postline.store.messages import MessageStore
from postline.store.pool import create_pool
from postline.store.receipts import ReceiptStore

log = logging.getLogger("postline.api")

#: The default `service.name` of the API's traces (OTEL_SERVICE_NAME wins).
SERVICE_NAME = "postline-api"


class TimingMiddleware:
    """Observes every request's latency by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.request_duration.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


async def _warm(pool: asyncpg.Pool, connections: int) -> None:
    """Opens the pool's connections before the first request needs them.

    Best effort: with PostgreSQL down the API still starts (and answers 503).
    """

    async def touch() -> None:
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT 1")
            await asyncio.sleep(0.05)  # hold it, so the next touch opens another

    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(touch() for _ in range(connections))), 3)


def create_app(settings: Settings) -> FastAPI:
    """Builds the API for `settings` (DATABASE_URL and REDIS_URL must be set)."""
    if not settings.database_url or not settings.redis_url:
        raise ValueError("create_app needs settings with database_url and redis_url")
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url and settings.redis_url
        await check_inbound_callback_url(settings)
        # Closed in reverse order, each whatever the one before it raised.
        async with contextlib.AsyncExitStack() as closing:
            closing.callback(metrics.process_exited)
            pool = await create_pool(settings.database_url, size=settings.db_pool_size, lazy=True)
            closing.push_async_callback(pool.close)
            redis = connect(settings.redis_url, timeout=2.0)
            closing.push_async_callback(redis.aclose)
            queue = RedisQueue(redis)
            try:
                await queue.ensure_groups()
            except (RedisError, OSError) as exc:
                log.warning(
                    "redis unavailable at start; sends are stored and queued later: %s", exc
                )
            store = MessageStore(pool)
            acceptor = Acceptor(store=store, queue=queue)
            receipts = ReceiptIntake(ReceiptStore(pool), queue=queue)
            parts = Components(settings, pool, redis, queue, store, acceptor, receipts, metrics)
            if settings.sync_message_processing:
                session = http_session(settings, connections=100)
                closing.push_async_callback(session.close)
                router = build_router(settings, session=session, redis=redis)
                closing.push_async_callback(router.close)
                parts.inline = InlineSender(
                    store=store,
                    routes=router,
                    policy=retry_policy(settings),
                    completer=Completer(store=store, queue=queue, metrics=WorkerMetrics()),
                    queue=queue,
                    visibility_timeout=settings.visibility_timeout_seconds,
                    provider_timeout=settings.provider_timeout_seconds,
                    # The workers' buckets: the account follows this router's routes.
                    pacing=build_pacing(settings, redis, store, router),
                )
                parts.inline.start()
                closing.push_async_callback(parts.inline.close)
            app.state.components = parts
            await _warm(pool, settings.db_pool_size)
            acceptor.start()
            closing.push_async_callback(acceptor.close)
            receipts.start()
            closing.push_async_callback(receipts.close)
            settle_garbage_collector()
            yield

    app = FastAPI(
        title="Postline",
        version="1.0.0",
        summary="SMS, MMS, WhatsApp and email over one HTTP API.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by docs.install (no CDN)
        redoc_url=None,
        # FastAPI's own telemetry would switch itself on whenever anything in
        # the process configures an OpenTelemetry provider; Postline's traces
        # are `postline.tracing`'s alone, and off unless asked for.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(TimingMiddleware, metrics=metrics)
    errors.install(app)
    app.include_router(collection.router)
    app.include_router(messages.router)
    app.include_router(health.router)
    app.include_router(stats.router)
    app.include_router(activity.router)
    app.include_router(dashboard.router)
    app.include_router(webhooks.router)
    app.include_router(suppressions.router)
    app.include_router(unsubscribe.router)
    app.include_router(inbound.webhook_router)
    app.include_router(inbound.router)
    app.mount(dashboard.STATIC_PATH, StaticFiles(directory=dashboard.STATIC_DIR), name="dashboard")
    openapi.install(app)
    docs.install(app)
    tracing.instrument_app(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one `postline api --workers N` process, from its environment.

    uvicorn starts each worker process fresh (spawn) and can only hand it an
    import string, so the process builds its own settings and logging here.
    They come out as the parent's: children inherit its environment, which
    already holds anything the parent added (the `postline dev` fallback, the
    metrics directory).
    """
    settings = Settings()
    # The same file `postline api` itself logs to (cli._settings).
    log_file = Path(settings.log_dir) / "app.log" if settings.log_dir else None
    logs.configure(level=settings.log_level, fmt=settings.log_format, file=log_file)
    tracing.start_from_environment(SERVICE_NAME)
    return create_app(settings)
