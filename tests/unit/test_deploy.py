"""The Grafana dashboard and the Prometheus alert rules in deploy/ name only
metrics and labels Postline exports, so renaming a metric fails here, not in
an operator's empty panel or silent alert."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from postline.metrics import ApiMetrics, WorkerMetrics, scrape_gauges
from postline.queue.pacing import Waiting

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "postline.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# A metric name, then its label matchers if any: `postline_x{a="1", b=~"2"}`.
SELECTOR = re.compile(r"\b(postline_[a-z0-9_]+)(?:\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
# The series names each kind of metric family exposes.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def _with_a_child_each(metrics: ApiMetrics | WorkerMetrics) -> Collector:
    """The process's registry, each labelled metric given one child so its labels show."""
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    return metrics.registry


def _collectors() -> list[Collector]:
    gauges = scrape_gauges(
        queues={"message_queue:sms": {"depth": 0, "pending": 0}},
        statuses={"pending": 0},
        totals={("sms", "sent"): 1},
        oldest_pending=0.0,
        workers=1,
        routes={"twilio": ("closed", 0.0)},
        paced=[Waiting("+15551234567", "long_code", 3, 2.0)],
        suppressions={("email", "bounce"): 2},
    )
    return [_with_a_child_each(ApiMetrics()), _with_a_child_each(WorkerMetrics()), gauges]


def exported() -> dict[str, set[str]]:
    """Every series name the API and the workers export, with its label names."""
    names: dict[str, set[str]] = {}
    for collector in _collectors():
        for family in collector.collect():
            assert family.samples, f"{family.name}: no sample to read its labels from"
            labels = {label for sample in family.samples for label in sample.labels} - {"le"}
            for suffix in SUFFIXES[family.type]:
                names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def references(text: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for each selector in a PromQL expression."""
    return [
        (name, set(MATCHER.findall(matchers or ""))) for name, matchers in SELECTOR.findall(text)
    ]


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_postline_exports_the_series_its_deploy_files_are_written_against() -> None:
    names = exported()
    # A sanity check of the collection itself, so a broken one cannot pass everything.
    assert names["postline_cluster_outcomes_total"] == {"channel", "outcome"}
    assert names["postline_provider_request_duration_seconds_bucket"] == {"provider", "le"}
    assert "postline_workers_live" in names and "postline_worker_inflight" in names


@pytest.mark.parametrize(
    ("what", "expressions"),
    [("dashboard", dashboard_expressions), ("alerts", alert_expressions)],
)
def test_every_metric_and_label_referenced_exists(what: str, expressions: Any) -> None:
    names = exported()
    found = [ref for expr in expressions() for ref in references(expr)]
    assert found, f"the {what} references no Postline metric"
    for name, labels in found:
        assert name in names, f"{what}: {name} is not a Postline metric"
        assert labels <= names[name], f"{what}: {name} has no label {labels - names[name]}"


def test_the_dashboard_has_every_panel_people_look_for() -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in board["panels"]}
    assert {
        "Accept rate per channel", "Send rate per channel", "Failure ratio",
        "Backlog per stream", "Oldest pending age", "Provider latency", "Dead letters",
        "Live workers",
    } <= titles  # fmt: skip
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in board["panels"])


def test_the_alert_rules_cover_the_failures_that_need_a_person() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert set(alerts) == {
        "PostlineBacklogGrowing", "PostlineNoLiveWorker", "PostlineFailureRatioHigh",
        "PostlineOldestPendingTooOld", "PostlineDeadLettersIncreasing",
        "PostlineRouteNotClosed",
    }  # fmt: skip
    assert alerts["PostlineBacklogGrowing"]["for"] == "10m"
    assert alerts["PostlineFailureRatioHigh"]["for"] == "10m"
    assert "> 0.05" in alerts["PostlineFailureRatioHigh"]["expr"]
    assert "> 300" in alerts["PostlineOldestPendingTooOld"]["expr"]
    assert "postline_route_circuit" in alerts["PostlineRouteNotClosed"]["expr"]
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
