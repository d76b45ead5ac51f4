"""Turning tracing on: the SDK from the standard OTEL_* variables, and the instrumentations.

Imported only when tracing is wanted (it needs the `otel` extra). The SDK
reads its own variables: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
(the resource), OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* (batching), and the
exporter's (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT, ...).
OTEL_TRACES_EXPORTER names the exporters: `otlp` is OTLP over HTTP/protobuf
(the one the extra ships; `grpc` as OTEL_EXPORTER_OTLP_PROTOCOL needs
`opentelemetry-exporter-otlp-proto-grpc` installed), `console` prints spans,
and any other name is looked up among the installed exporters.

asyncpg, redis and aiohttp are instrumented process-wide. A worker's side
loops (heartbeats, promotion, the reconciler, idle reads) would each make a
one-span trace several times a second, so the sampler drops a client span
(a database, Redis or HTTP call) that has no parent: such calls appear only
inside the trace of the request or message they serve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from postline import tracing
from postline.tracing.spans import Spans

EXPORTER_GROUP = "opentelemetry_traces_exporter"


class InsideTraces(Sampler):
    """Drops parentless client spans; asks `inner` (OTEL_TRACES_SAMPLER) about the rest."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"InsideTraces{{{self.inner.get_description()}}}"


def start_from(environ: Mapping[str, str], *, service: str) -> TracerProvider:
    """Builds the SDK from the environment, makes it global and instruments the libraries."""
    chosen = exporters(environ)
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    # The SDK's own reading of OTEL_TRACES_SAMPLER(_ARG); it has no public name.
    provider = TracerProvider(resource=resource, sampler=InsideTraces(_get_from_env_or_default()))
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    start(provider)
    return provider


def exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (default `otlp`); raises on an unknown one."""
    found: list[SpanExporter] = []
    for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(","):
        name = name.strip()
        if name in ("", "none"):
            continue
        point = _otlp_flavour(environ) if name == "otlp" else name
        matches = entry_points(group=EXPORTER_GROUP, name=point)
        if not matches:
            raise ValueError(f"OTEL_TRACES_EXPORTER: no installed trace exporter {point!r}")
        found.append(next(iter(matches)).load()())
    return found


def _otlp_flavour(environ: Mapping[str, str]) -> str:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return "otlp_proto_grpc" if protocol.strip().lower() == "grpc" else "otlp_proto_http"


def start(provider: TracerProvider) -> None:
    """Instruments asyncpg, redis and aiohttp on `provider`, and turns Postline's spans on.

    HTTP sessions, pools and clients made before this are not traced; each
    process calls it before it builds them.
    """
    _asyncpg().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    tracing.use(Spans(provider))


def stop() -> None:
    """Undoes `start`: Postline's spans off, the libraries as they were (for tests)."""
    tracing.use(None)
    AioHttpClientInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    _asyncpg().uninstrument()


def _asyncpg() -> AsyncPGInstrumentor:
    return AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # its __init__ has no annotations
