"""Tracing turned on the standard way: OTEL_* variables of real `postline` processes.

The API and the worker each print their spans (OTEL_TRACES_EXPORTER=console);
the message's spans in both share one trace id. The in-process test of the
span tree is tests/integration/test_traces.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import wait_until
from tests.support.stack import Stack

SMS = {"from": "+15551230001", "to": "+15559870009", "type": "sms", "body": "Traced"}


def printed_spans(log: Path) -> list[dict[str, Any]]:
    """The spans the console exporter printed (one indented JSON object each) among log lines."""
    text, decoder, spans = log.read_text(), json.JSONDecoder(), []
    at = text.find("{\n")
    while at != -1:
        try:
            found, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            end = at + 2
        else:
            if isinstance(found, dict) and "context" in found and "name" in found:
                spans.append(found)
        at = text.find("{\n", end)
    return spans


def wait_for_span(log: Path, name: str) -> dict[str, Any]:
    def printed() -> dict[str, Any] | None:
        return next((s for s in printed_spans(log) if s["name"] == name), None)

    found: dict[str, Any] = wait_until(printed, 20, f"a span {name!r} in {log.name}")
    return found


def test_otel_variables_trace_a_message_across_the_api_and_a_worker(stack: Stack) -> None:
    stack.start_simulator()
    stack.extra_env.update({"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50"})
    stack.start_api()
    stack.start_worker(concurrency=4)
    api_log, worker_log = stack.logs / "api.log", stack.logs / "worker1.log"
    answer = httpx.post(f"{stack.api_url}/api/v1/messages/send", json=SMS, timeout=10)
    assert answer.status_code == 202, answer.text
    request = wait_for_span(api_log, "POST /api/v1/messages/send")
    deliver = wait_for_span(worker_log, "postline.deliver")
    stack.stop_all()  # flushes what the exporters still hold

    assert request["resource"]["attributes"]["service.name"] == "postline-api"
    assert deliver["resource"]["attributes"]["service.name"] == "postline-worker"
    assert deliver["attributes"]["postline.message.id"] == answer.json()["id"]
    assert deliver["context"]["trace_id"] == request["context"]["trace_id"]
    assert deliver["parent_id"] == request["context"]["span_id"]
    # Health probes and the worker's side loops (heartbeats, promotion, idle
    # reads) make no traces of their own: one message, one trace.
    for log in (api_log, worker_log):
        assert {s["context"]["trace_id"] for s in printed_spans(log)} == {
            request["context"]["trace_id"]
        }
