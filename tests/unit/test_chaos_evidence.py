"""What a feature campaign says the features did, from hand-made calls and stats readings."""

from __future__ import annotations

from typing import Any

from postline.chaos.checker import check
from postline.chaos.evidence import feature_figures, observed
from postline.chaos.observe import sample_of
from postline.chaos.records import ProviderCall
from postline.chaos.summary import report_json, summary_lines

PRIMARY, BACKUP, PACED = "AC0", "ACb", "+15550000001"
RUN: dict[str, Any] = {
    "seed": 1,
    "duration": 60.0,
    "rate": 150.0,
    "keys": 100,
    "workers": 3,
    "features": ["failover", "pacing"],
    "accounts": {"primary": PRIMARY, "backup": BACKUP},
    "pacing": {
        "sender": PACED,
        "keys": 10,
        "offered": 15.0,
        "rate": 20.0,
        "account_concurrency": 32,
    },
}


def call(
    at: float, account: str, *, status: int = 201, sender: str = "+15550000000"
) -> ProviderCall:
    ok = status == 201
    return ProviderCall("k", 1, at, at + 0.01, "accepted" if ok else "refused", ok, status,
                        account, sender)  # fmt: skip


def reading(at: float, twilio: str, waiting: int = 0, ahead: float = 0.0) -> dict[str, Any]:
    pacing = [{"sender": PACED, "class": "long_code", "waiting": waiting, "wait_seconds": ahead}]
    return {"at": at, "pacing": pacing if waiting else [], "routes": {"twilio": twilio}}


def test_failover_counts_each_accounts_calls_and_the_primary_circuits_openings() -> None:
    calls = [call(0.0, PRIMARY), call(1.0, PRIMARY, status=503), call(2.0, BACKUP)]
    samples = [
        reading(0, "closed"),
        reading(2, "open"),
        reading(4, "half_open"),
        reading(6, "open"),  # a failed probe: opened again, not a new outage
        reading(8, "closed"),
        {"at": 10, "error": "HTTPError: HTTP Error 503"},
        reading(12, "open"),
    ]

    failover = feature_figures(RUN, calls, samples)["failover"]

    assert failover["accounts"] == {
        "backup": {"calls": 1, "accepted": 1},
        "primary": {"calls": 2, "accepted": 1},
    }
    assert failover["circuit"] == {"closed": 2, "open": 3, "half_open": 1, "opened": 2}
    assert failover["readings"] == 6


def test_pacing_reads_the_waits_its_busiest_window_and_the_429s() -> None:
    # 21 calls within 1 s, then one every half second.
    times = [i / 20 for i in range(21)] + [1.0 + i / 2 for i in range(1, 20)]
    calls = [call(t, PRIMARY, sender=PACED) for t in times]
    calls += [call(3.0, BACKUP, status=429), call(3.75, PRIMARY)]
    samples = [reading(0, "closed", waiting=4, ahead=0.2), reading(2, "closed", 9, 0.45)]
    samples.append(reading(4, "closed"))

    pacing = feature_figures(RUN, calls, samples)["pacing"]

    assert pacing["calls"] == 40
    assert pacing["busiest_per_second"] == (21 + 7) / 5  # [0, 5 s): the burst, 7 more
    assert (pacing["waiting_readings"], pacing["most_waiting"]) == (2, 9)
    assert pacing["longest_wait_seconds"] == 0.45
    assert pacing["throttled"] == 1
    assert pacing["rate"] == 20.0
    # One 10 ms call every 50 ms: never two open at once on the primary.
    assert pacing["in_flight"] == {"backup": 1, "primary": 1}


def test_the_most_calls_in_flight_per_account_show_the_concurrency_cap() -> None:
    calls = [call(0.0, PRIMARY), call(0.005, PRIMARY), call(0.01, PRIMARY), call(0.02, BACKUP)]

    # The third starts as the first ends: an end is counted before a start.
    assert feature_figures(RUN, calls, [])["pacing"]["in_flight"] == {"backup": 1, "primary": 2}


def test_a_feature_that_never_engaged_is_said_so() -> None:
    calls = [call(0.0, PRIMARY)]
    figures = feature_figures(RUN, calls, [reading(0, "closed")])
    report = check([], calls, [])

    lines = summary_lines(report, RUN, figures)

    assert observed(figures) == {"failover": False, "pacing": False}
    assert "features=failover,pacing" in lines[0]
    assert any("NOT OBSERVED: the backup accepted nothing" in line for line in lines)
    assert any("NOT OBSERVED: no message waited for a slot" in line for line in lines)
    assert report_json(report, RUN, figures)["observed"] == observed(figures)


def test_a_run_without_features_has_no_feature_figures() -> None:
    run = {key: RUN[key] for key in ("seed", "duration", "rate", "keys", "workers")}

    assert feature_figures(run, [call(0.0, PRIMARY)], []) == {}
    assert "features=none" in summary_lines(check([], [], []), run)[0]


def test_a_stats_reading_keeps_the_paced_senders_and_the_circuit_states() -> None:
    stats = {
        "queues": {"sms": {"backlog": 3}},
        "routes": {"twilio": {"state": "open", "failed": 30}, "twilio_backup": {"state": "closed"}},
        "pacing": {"senders": [{"sender": PACED, "waiting": 2}]},
    }

    assert sample_of(stats, 5.0) == {
        "at": 5.0,
        "pacing": [{"sender": PACED, "waiting": 2}],
        "routes": {"twilio": "open", "twilio_backup": "closed"},
    }
