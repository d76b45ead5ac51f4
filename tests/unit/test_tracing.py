"""What turns tracing on, which exporters it builds, and what it records."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from postline import tracing
from postline.tracing import setup
from postline.tracing.spans import DEFAULT_EXCLUDED_URLS, Spans, excluded_urls


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "postline"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": " Console "}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "none,console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_opt_in_through_the_standard_variables(
    environ: dict[str, str], on: bool
) -> None:
    assert tracing.wanted(environ) is on


def test_nothing_asked_for_leaves_tracing_off() -> None:
    assert tracing.start_from_environment("postline-test", {}) is False
    assert not tracing.enabled()
    assert tracing.traceparent() == ""
    with tracing.batch_span("postline.accept", ["00-" + "1" * 32 + "-" + "2" * 16 + "-01"]):
        pass
    with tracing.message_span("postline.deliver", "", message_id="m", channel="sms", attempt=1):
        pass


def test_exporters_are_named_as_the_sdk_names_them() -> None:
    assert setup.exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    (otlp,) = setup.exporters({})
    assert isinstance(otlp, OTLPSpanExporter)  # otlp is OTLP over HTTP
    both = setup.exporters({"OTEL_TRACES_EXPORTER": "console, otlp"})
    assert [type(e) for e in both] == [ConsoleSpanExporter, OTLPSpanExporter]
    with pytest.raises(ValueError, match="zipkin"):
        setup.exporters({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ValueError, match="otlp_proto_grpc"):  # not shipped by the extra
        setup.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_a_bad_exporter_leaves_the_process_running_untraced() -> None:
    assert tracing.start_from_environment("t", {"OTEL_TRACES_EXPORTER": "zipkin"}) is False
    assert not tracing.enabled()


def _parent(sampled: bool = True) -> Context:
    span = NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(int(sampled))))
    return trace.set_span_in_context(span)


def test_the_sampler_drops_client_calls_made_outside_any_trace() -> None:
    sampler = setup.InsideTraces(ALWAYS_ON)
    decide = sampler.should_sample
    assert decide(None, 7, "XREADGROUP", SpanKind.CLIENT).decision == Decision.DROP
    assert decide(Context(), 7, "SELECT", SpanKind.CLIENT).decision == Decision.DROP
    assert decide(_parent(), 7, "SELECT", SpanKind.CLIENT).decision.is_sampled()
    assert decide(None, 7, "POST /api/v1/messages/send", SpanKind.SERVER).decision.is_sampled()
    assert decide(None, 7, "postline.deliver", SpanKind.CONSUMER).decision.is_sampled()
    assert "AlwaysOnSampler" in sampler.get_description()


def test_a_batch_span_is_a_child_of_its_first_traced_item_and_links_the_rest() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = Spans(provider)
    first, second = ("00-" + f"{n:032x}" + "-" + f"{n:016x}" + "-01" for n in (1, 2))
    with spans.batch("postline.complete", ["", first, "", second]):
        pass
    with spans.batch("postline.claim", ["", ""]):  # nothing traced: no span
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None and (span.context.trace_id, span.parent.span_id) == (1, 1)
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(2, 2)]
    assert dict(span.attributes or {}) == {"postline.batch.size": 4, "postline.batch.traced": 2}


def test_probes_are_not_traced_unless_the_variables_say_otherwise() -> None:
    assert excluded_urls({}) == DEFAULT_EXCLUDED_URLS == "/health,/metrics"
    assert excluded_urls({"OTEL_PYTHON_EXCLUDED_URLS": "x"}) == "x"
    assert excluded_urls({"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "y"}) == "y"


def test_a_deliver_span_continues_the_entry_s_trace_and_shows_a_failed_attempt() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = Spans(provider)
    carried = "00-" + f"{5:032x}" + "-" + f"{6:016x}" + "-01"
    with spans.message("postline.deliver", carried, message_id="m", channel="sms", attempt=2):
        spans.note_outcome("retrying", "http_503")
    with spans.message("postline.deliver", "", message_id="n", channel="email", attempt=1):
        spans.note_outcome("sent", None)
    continued, fresh = exporter.get_finished_spans()
    assert continued.parent is not None and continued.parent.span_id == 6
    assert continued.context.trace_id == 5 and continued.kind == SpanKind.CONSUMER
    assert not continued.status.is_ok and continued.status.description == "http_503"
    assert (continued.attributes or {})["postline.outcome.error_code"] == "http_503"
    assert fresh.parent is None and fresh.context.trace_id != 5  # queued again: a new trace
    assert (fresh.attributes or {})["postline.trace.continued"] is False
    assert fresh.status.is_unset
