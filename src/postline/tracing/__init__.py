"""OpenTelemetry traces, opt-in: one trace per message, API request to status write.

Off unless the process environment asks for it (`wanted`): then nothing of
OpenTelemetry is imported, no library is instrumented, no stream entry
carries a trace context, and each helper below costs one module-level None
check. `start_from_environment` (each API and worker process, at start)
turns it on; the SDK, its exporters and the instrumentations live in
`setup`, imported only then.

A message's trace context travels as its W3C `traceparent` string: in the
stream entry (field `tp`) from the API to the worker, and in the items of
the group commits (accept, status write). A group commit writes many
messages in one statement, so its span (`batch_span`) is a child of the
first traced item of the batch and links to the others.

Imports no other Postline package: every room may use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postline.tracing.spans import Spans

log = logging.getLogger("postline.tracing")

#: The stream entry's field holding the message's `traceparent`.
ENTRY_FIELD = "tp"

_spans: Spans | None = None
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the standard OTEL_* variables ask for traces.

    On when OTEL_TRACES_EXPORTER names an exporter (not `none`), or when an
    OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; the exporter is then `otlp`); off
    whenever OTEL_SDK_DISABLED is `true`. Unlike the SDK's own default
    (`otlp` to localhost), nothing set means off: tracing is opt-in.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return any(name.strip() not in ("", "none") for name in exporters.split(","))
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def start_from_environment(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turns tracing on if the environment asks for it; returns whether it is on.

    `service` is the default `service.name` (OTEL_SERVICE_NAME wins). A
    tracing set-up that fails (the `otel` extra missing, an unknown
    exporter) is logged and the process runs untraced: delivery does not
    depend on observability.
    """
    environ = os.environ if environ is None else environ
    if _spans is not None or not wanted(environ):
        return _spans is not None
    try:
        from postline.tracing import setup
    except ImportError as exc:
        log.error("tracing asked for, but postline[otel] is not installed (%s): untraced", exc)
        return False
    try:
        setup.start_from(environ, service=service)
    except Exception:  # a bad tracing set-up must not stop the service
        log.exception("tracing could not be set up: running untraced")
        return False
    return True


def enabled() -> bool:
    return _spans is not None


def use(spans: Spans | None) -> None:
    """Installs (or, with None, removes) the span helpers; `setup` calls this."""
    global _spans
    _spans = spans


def traceparent() -> str:
    """The caller's trace context as a W3C traceparent; "" when off or outside a trace."""
    return "" if _spans is None else _spans.traceparent()


def batch_span(name: str, traceparents: Iterable[str]) -> AbstractContextManager[Any]:
    """A span around one group commit: child of the first traced item, linked to the rest."""
    return _OFF if _spans is None else _spans.batch(name, traceparents)


def message_span(
    name: str, traceparent: str, *, message_id: str, channel: str, attempt: int
) -> AbstractContextManager[Any]:
    """A worker's span for one message, child of the context its entry carried.

    An entry without one (queued again after acceptance: a retry, the next
    message of a released key, the reconciler) starts a new trace.
    """
    if _spans is None:
        return _OFF
    return _spans.message(
        name, traceparent, message_id=message_id, channel=channel, attempt=attempt
    )


def note_outcome(status: str, error_code: str | None) -> None:
    """Records an attempt's outcome on the current span; a failed or retried one
    marks it as an error, so a backend can find the attempts that did not go."""
    if _spans is not None:
        _spans.note_outcome(status, error_code)


def instrument_app(app: Any) -> None:
    """Traces a FastAPI app's requests (when tracing is on)."""
    if _spans is not None:
        _spans.instrument_app(app)
