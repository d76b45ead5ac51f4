"""The span helpers behind `postline.tracing`, used only while tracing is on.

Trace contexts are carried as W3C `traceparent` strings whatever
OTEL_PROPAGATORS says: that variable is about what the API reads from its
callers (the FastAPI instrumentation honours it), while the stream entry's
format is Postline's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
_KEY = "traceparent"
#: Requests left untraced unless OTEL_PYTHON_(FASTAPI_)EXCLUDED_URLS says otherwise.
DEFAULT_EXCLUDED_URLS = "/health,/metrics"


class Spans:
    """Starts Postline's own spans on one tracer provider."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("postline")

    def traceparent(self) -> str:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get(_KEY, "")

    def batch(self, name: str, traceparents: Iterable[str]) -> AbstractContextManager[Any]:
        parent: Context | None = None
        links: list[Link] = []
        size = 0
        for value in traceparents:
            size += 1
            if not value:
                continue
            found = _W3C.extract({_KEY: value})
            if parent is None:
                parent = found
            else:
                links.append(Link(trace.get_current_span(found).get_span_context()))
        return self._batch(name, parent, links, size)

    @contextmanager
    def _batch(
        self, name: str, parent: Context | None, links: list[Link], size: int
    ) -> Iterator[None]:
        if parent is None:
            # No item of the batch is traced (all queued again after
            # acceptance): its statements stay out of every trace.
            yield
            return
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            links=links,
            attributes={"postline.batch.size": size, "postline.batch.traced": len(links) + 1},
        ):
            yield

    def message(
        self, name: str, traceparent: str, *, message_id: str, channel: str, attempt: int
    ) -> AbstractContextManager[Any]:
        parent = _W3C.extract({_KEY: traceparent}) if traceparent else Context()
        return self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "postline.message.id": message_id,
                "postline.message.channel": channel,
                "postline.message.attempt": attempt,
                "postline.trace.continued": bool(traceparent),
            },
        )

    def note_outcome(self, status: str, error_code: str | None) -> None:
        span = trace.get_current_span()
        span.set_attribute("postline.outcome.status", status)
        if error_code:
            span.set_attribute("postline.outcome.error_code", error_code)
        if status != "sent":
            span.set_status(StatusCode.ERROR, error_code or status)

    def instrument_app(self, app: Any) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # "receive"/"send" spans would add two spans per request and tell
        # nothing the request span does not.
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],
            excluded_urls=excluded_urls(os.environ),
        )


def excluded_urls(environ: Mapping[str, str]) -> str:
    """The instrumentation's own variables, else the probes: a health check or a
    scrape every few seconds would be most of the traces."""
    return (
        environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
        or environ.get("OTEL_PYTHON_EXCLUDED_URLS")
        or DEFAULT_EXCLUDED_URLS
    )
