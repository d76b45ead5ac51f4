"""A worker process: builds its parts from the settings and runs until signalled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import asyncpg
from prometheus_client import start_http_server

from postline import tracing
from postline.callbacks.dispatcher import CallbackDispatcher
from postline.metrics import WorkerMetrics
from postline.providers.registry import http_session
from postline.queue.streams import RedisQueue, connect
from postline.services.attempts import retry_policy
from postline.services.housekeeping import Housekeeping, retention
from postline.services.pacing import build_pacing
from postline.services.routing import build_router
from postline.settings import Settings, whsec_key
from postline.store.callbacks import CallbackStore
from postline.store.messages import MessageStore
from postline.store.pool import create_pool
from postline.store.retention import RetentionStore
from postline.worker.runner import Worker

log = logging.getLogger("postline.worker")


@contextlib.asynccontextmanager
async def built_worker(
    settings: Settings, *, concurrency: int, metrics: WorkerMetrics
) -> AsyncIterator[Worker]:
    """A worker with its pools and HTTP session, closed when the block ends."""
    assert settings.database_url and settings.redis_url
    # Lazy: a worker started while PostgreSQL is down waits for it instead of exiting.
    pool = await create_pool(settings.database_url, size=settings.db_pool_size, lazy=True)
    redis = connect(settings.redis_url)
    session = http_session(settings, connections=concurrency)
    store = MessageStore(pool)
    try:
        # The worker's side loop refreshes the circuits (`Worker.run`).
        router = build_router(
            settings, session=session, redis=redis, metrics=metrics, refresh_on_pick=False
        )
        yield Worker(
            store=store,
            queue=RedisQueue(redis),
            routes=router,
            policy=retry_policy(settings),
            concurrency=concurrency,
            visibility_timeout=settings.visibility_timeout_seconds,
            provider_timeout=settings.provider_timeout_seconds,
            reconcile_interval=settings.reconcile_interval_seconds,
            metrics=metrics,
            callbacks=callback_dispatcher(settings, pool),
            pacing=build_pacing(settings, redis, store, router),
            housekeeping=Housekeeping(
                store=RetentionStore(pool), retention=retention(settings), metrics=metrics
            ),
        )
    finally:
        await session.close()
        await redis.aclose()
        await pool.close()


async def serve(settings: Settings, *, concurrency: int, metrics_port: int | None) -> None:
    metrics = WorkerMetrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
        log.info("worker metrics on http://127.0.0.1:%d/metrics", metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    running = asyncio.current_task()
    assert running is not None

    def signalled() -> None:
        # The first signal finishes the sends in flight and writes their
        # outcomes, which waits for PostgreSQL if it is down: leaving them
        # unwritten would send them again. A second signal gives that up
        # (their leases run out and another worker sends them again).
        if stop.is_set():
            log.warning("second signal: stopping now, unwritten outcomes go back to their leases")
            running.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled)
    try:
        async with built_worker(settings, concurrency=concurrency, metrics=metrics) as worker:
            await worker.run(stop)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise


def callback_dispatcher(settings: Settings, pool: asyncpg.Pool) -> CallbackDispatcher | None:
    """The client-callback dispatcher, when a signing secret is configured."""
    if not settings.callback_signing_secret:
        return None
    return CallbackDispatcher(
        store=CallbackStore(pool),
        key=whsec_key(settings.callback_signing_secret),
        first_backoff=settings.callback_retry_base_seconds,
        allow_private_networks=settings.callback_allow_private_networks,
    )


def run(
    settings: Settings, *, concurrency: int | None = None, metrics_port: int | None = None
) -> None:
    """Blocks until SIGTERM/SIGINT, then finishes the sends in flight and returns."""
    # Before the pools and the HTTP session exist, so that they are traced.
    tracing.start_from_environment("postline-worker")
    main = serve(
        settings, concurrency=concurrency or settings.worker_concurrency, metrics_port=metrics_port
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        asyncio.run(main)
    else:
        uvloop.run(main)
