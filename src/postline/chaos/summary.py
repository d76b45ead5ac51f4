"""The campaign's verdict in words: what ran, what hit it, the four counts, a few examples,
and what each feature on did.

Pure formatting of a `Report` and the features' figures (`evidence`);
`report_json` is the same content for machines.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postline.chaos.checker import Report
from postline.chaos.evidence import BUSIEST_SECONDS, observed

EXAMPLES = 5


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def delay_figures(report: Report) -> dict[str, float | None]:
    """Request sent -> first accept at the provider, seconds (report.delays is sorted)."""
    delays = report.delays
    return {
        "p50": _percentile(delays, 0.50),
        "p99": _percentile(delays, 0.99),
        "max": delays[-1] if delays else None,
    }


def summary_lines(
    report: Report, run: dict[str, Any], figures: dict[str, Any] | None = None
) -> list[str]:
    counts = report.counts()
    faults = ", ".join(f"{kind} {n}" for kind, n in report.faults.items()) or "none"
    delays = delay_figures(report)
    lines = [
        f"chaos seed={run['seed']} duration={run['duration']:g}s rate={run['rate']:g}/s "
        f"keys={run['keys']} workers={run['workers']} "
        f"features={','.join(run.get('features', ())) or 'none'}",
        f"faults ({sum(report.faults.values())}): {faults}",
        "exited on their own: "
        + (", ".join(f"{name} {n}" for name, n in report.exits.items()) or "none"),
        f"messages: sent {report.requests}, acknowledged {report.acknowledged}, "
        f"skipped {run.get('skipped', 0)}; delivered {report.delivered} "
        f"(of which not acknowledged {report.delivered_unacknowledged})",
        "delivery delay (sent -> first accept): "
        + ", ".join(f"{k} {v:.2f}s" if v is not None else f"{k} -" for k, v in delays.items()),
        f"duplicates: {len(report.duplicates)} "
        f"({len(report.duplicates) - len(report.unexplained)} explained by a fault window)",
        "lost {lost} | unexplained duplicates {unexplained_duplicates} | "
        "order violations {order_violations} | "
        "one-at-a-time violations {one_at_a_time_violations}".format(**counts),
        *feature_lines(figures or {}),
    ]
    for name, items in (
        ("lost", report.lost),
        ("unexplained duplicate", report.unexplained),
        ("order violation", report.order),
        ("one-at-a-time violation", report.overlaps),
    ):
        lines.extend(f"  e.g. {name}: {item}" for item in items[:EXAMPLES])
    lines.extend(f"  fault misfired: {f.kind} {f.target} {f.detail}" for f in report.misfired)
    lines.append("result: " + ("PASS" if report.ok else "FAIL"))
    return lines


def feature_lines(figures: dict[str, Any]) -> list[str]:
    """What each feature did (`evidence.feature_figures`), and whether it engaged."""
    seen = observed(figures)
    lines = []
    if "failover" in figures:
        failover = figures["failover"]
        accounts = ", ".join(
            f"{name} {f['calls']:,} ({f['accepted']:,} accepted)"
            for name, f in failover["accounts"].items()
        )
        circuit = failover["circuit"]
        lines.append(
            f"failover: calls by account: {accounts or 'none'}; the primary's circuit "
            f"opened {circuit['opened']} times, seen open in {circuit['open']} and half-open "
            f"in {circuit['half_open']} of {failover['readings']} stats readings"
            + ("" if seen["failover"] else "; NOT OBSERVED: the backup accepted nothing")
        )
    if "pacing" in figures:
        pacing = figures["pacing"]
        in_flight = ", ".join(f"{name} {n}" for name, n in pacing["in_flight"].items())
        lines.append(
            f"pacing: {pacing['sender']} ({pacing['keys']} keys) at {pacing['rate']:g}/s, "
            f"offered {pacing['offered']:g}/s, account cap {pacing['account_concurrency']}; "
            f"messages waiting for a slot in {pacing['waiting_readings']} of "
            f"{pacing['readings']} stats readings, at most {pacing['most_waiting']}, "
            f"{pacing['longest_wait_seconds']:.2f}s ahead; its {pacing['calls']:,} provider "
            f"calls at most {pacing['busiest_per_second']:g}/s over {BUSIEST_SECONDS:g}s; "
            f"most calls in flight {in_flight or 'none'}; 429s answered {pacing['throttled']:,}"
            + ("" if seen["pacing"] else "; NOT OBSERVED: no message waited for a slot")
        )
    return lines


def report_json(
    report: Report, run: dict[str, Any], figures: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "run": run,
        "features": figures or {},
        "observed": observed(figures or {}),
        "counts": report.counts(),
        "ok": report.ok,
        "requests": report.requests,
        "acknowledged": report.acknowledged,
        "delivered": report.delivered,
        "delivered_unacknowledged": report.delivered_unacknowledged,
        "faults": report.faults,
        "exits": report.exits,
        "misfired": [dataclasses.asdict(f) for f in report.misfired],
        "delay_seconds": delay_figures(report),
        "duplicates": [dataclasses.asdict(d) for d in report.duplicates],
        "lost": report.lost,
        "order_violations": [dataclasses.asdict(v) for v in report.order],
        "one_at_a_time_violations": [dataclasses.asdict(v) for v in report.overlaps],
    }
