"""OpenTelemetry: one trace per message, from the API request to the status write.

The real API, a real worker loop and the provider simulator, against real
PostgreSQL and Redis, with spans exported to memory. With tracing off, the
same run, started from an environment that switches the SDK off, puts no
trace context in the stream entry and makes no span, even with an SDK on
the global provider that would record any span at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

from postline import tracing
from postline.domain.channels import Channel
from postline.queue.keys import stream_of
from postline.settings import Settings
from postline.tracing import setup
from tests.support.harness import running_api, running_worker, wait_for

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Traced"}
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def _listening() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=setup.InsideTraces(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    """Tracing on, as a process's start turns it on, exporting to memory."""
    provider, exporter = _listening()
    setup.start(provider)
    try:
        yield exporter
    finally:
        setup.stop()
        provider.shutdown()


async def _entries(redis: aioredis.Redis) -> list[dict[str, str]]:
    found = await redis.xrange(stream_of(Channel.SMS))
    return [fields for _, fields in found]


async def _status(pool: asyncpg.Pool, message_id: str) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM messages WHERE id = $1", message_id
    )
    return status


def _one(spans: Sequence[ReadableSpan], what: str, **where: Any) -> ReadableSpan:
    found = [s for s in spans if all(_matches(s, k, v) for k, v in where.items())]
    assert len(found) == 1, f"{what}: {len(found)} spans match {where}: {_names(spans)}"
    return found[0]


def _matches(span: ReadableSpan, key: str, value: Any) -> bool:
    if key == "parent":
        return span.parent is not None and span.parent.span_id == value.context.span_id
    if key == "statement":
        attributes = span.attributes or {}
        text = str(attributes.get("db.statement") or attributes.get("db.query.text") or "")
        return bool(value in text)
    return bool(getattr(span, key) == value)


def _names(spans: Sequence[ReadableSpan]) -> list[str]:
    return [f"{s.name} ({s.kind.name})" for s in spans]


def _children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if _matches(s, "parent", parent)]


async def test_one_message_is_one_trace_from_request_to_status_write(
    traced: InMemorySpanExporter, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    assert tracing.enabled()
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=SMS)
        assert answer.status_code == 202, answer.text
        message_id = answer.json()["id"]

        # The stream entry carries the request's context (no worker yet).
        (entry,) = await _entries(redis)
        assert entry["id"] == message_id
        carried = TRACEPARENT.match(entry[tracing.ENTRY_FIELD])
        assert carried is not None, entry

        async with running_worker(settings):

            async def delivered() -> bool:
                names = {s.name for s in traced.get_finished_spans()}
                return (
                    await _status(pool, message_id) == "sent"
                    and {
                        "postline.deliver",
                        "postline.complete",
                    }
                    <= names
                )

            await wait_for(delivered, timeout=15, what="the message sent and its spans ended")

    spans = traced.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {int(carried[1], 16)}, _names(spans)

    request = _one(spans, "the API request", kind=SpanKind.SERVER)
    assert request.name == "POST /api/v1/messages/send"
    assert request.parent is None
    assert request.context.span_id == int(carried[2], 16)

    accept = _one(spans, "the group commit of the request", name="postline.accept")
    assert accept.parent is not None and accept.parent.span_id == request.context.span_id
    _one(spans, "the INSERT", parent=accept, statement="INSERT INTO messages")
    enqueue = [s for s in _children(spans, accept) if s.name.startswith("EVALSHA")]
    assert enqueue, f"no Redis enqueue under the accept span: {_names(spans)}"

    deliver = _one(spans, "the worker's processing", name="postline.deliver")
    assert deliver.kind == SpanKind.CONSUMER
    assert deliver.parent is not None and deliver.parent.span_id == request.context.span_id
    assert (deliver.attributes or {})["postline.message.id"] == message_id
    assert (deliver.attributes or {})["postline.outcome.status"] == "sent"
    assert deliver.status.is_unset

    provider = _one(spans, "the provider call", parent=deliver, kind=SpanKind.CLIENT)
    assert provider.name == "POST"
    attributes = provider.attributes or {}
    assert "/Messages.json" in str(attributes.get("url.full") or attributes.get("http.url"))

    complete = _one(spans, "the status write's batch", parent=deliver, name="postline.complete")
    _one(spans, "the status write", parent=complete, statement="UPDATE messages")
    assert [s for s in _children(spans, complete) if s.name.startswith("EVALSHA")], (
        "no acknowledgement under the completion span"
    )


#: A deployment that configures an exporter and an endpoint, then switches the
#: SDK off the standard way: everything but that one variable asks for traces.
SWITCHED_OFF = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    "OTEL_SDK_DISABLED": "true",
}


@pytest.fixture
def catch_all(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """One in-memory exporter behind every way a span could leave the process.

    The global provider samples everything (no `InsideTraces`: it would drop
    the parentless client spans a stray instrumentation makes), so any span
    made through the OpenTelemetry API, by Postline, FastAPI or a library,
    lands here; and the SDK a process builds if it turns tracing on exports
    here too, in place of the exporters OTEL_TRACES_EXPORTER names.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    monkeypatch.setattr(setup, "exporters", lambda environ: [exporter])
    # The net holds: a parentless client span, the kind the old sampler dropped.
    trace.get_tracer("probe").start_span("probe", kind=SpanKind.CLIENT).end()
    assert [s.name for s in exporter.get_finished_spans()] == ["probe"]
    exporter.clear()
    try:
        yield exporter
    finally:
        if tracing.enabled():  # the code under test turned it on: undo that
            setup.stop()
        provider.shutdown()


async def test_with_tracing_off_no_context_is_queued_and_no_span_is_made(
    catch_all: InMemorySpanExporter,
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> None:
    # Each process decides at its start, before it builds its pools.
    assert tracing.start_from_environment("postline-test", SWITCHED_OFF) is False
    assert not tracing.enabled()
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
        answer = await api.post("/api/v1/messages/send", json=SMS)
        assert answer.status_code == 202, answer.text
        message_id = answer.json()["id"]
        (entry,) = await _entries(redis)
        assert tracing.ENTRY_FIELD not in entry, entry
        assert entry == {"id": message_id, "k": SMS["to"]}

        async with running_worker(settings):

            async def sent() -> bool:
                return await _status(pool, message_id) == "sent"

            await wait_for(sent, timeout=15, what="the message to be sent")

    assert _names(catch_all.get_finished_spans()) == []
    assert not hasattr(asyncpg.Connection.execute, "__wrapped__")
    assert not hasattr(aioredis.Redis.execute_command, "__wrapped__")
    assert not hasattr(aiohttp.ClientSession.__init__, "__wrapped__")
