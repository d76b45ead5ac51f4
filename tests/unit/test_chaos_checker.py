"""The campaign's checker on small hand-made logs: each violation is found, a clean run passes."""

from __future__ import annotations

from postline.chaos.checker import Duplicate, OrderViolation, Overlap, check
from postline.chaos.records import (
    ClientRecord,
    FaultRecord,
    ProviderCall,
    message_body,
    parse_body,
    provider_calls,
)


def ack(key: str, n: int, sent: float, answered: float | None = None) -> ClientRecord:
    return ClientRecord(key, n, sent, answered if answered is not None else sent + 0.01, 202)


def refused(key: str, n: int, sent: float, status: int | None = None) -> ClientRecord:
    return ClientRecord(key, n, sent, sent + 0.01, status, error="ClientOSError")


def call(
    key: str, n: int, at: float, ended: float | None = None, outcome: str = "accepted"
) -> ProviderCall:
    accepted = outcome in ("accepted", "reset", "accepted_error")
    return ProviderCall(key, n, at, ended if ended is not None else at + 0.05, outcome, accepted)


def clean_run() -> tuple[list[ClientRecord], list[ProviderCall]]:
    client, calls = [], []
    for key in ("k1", "k2"):
        for n in (1, 2, 3):
            sent = 10.0 * n
            client.append(ack(key, n, sent))
            calls.append(call(key, n, sent + 1.0))
    return client, calls


def test_a_clean_run_passes_with_zero_counts() -> None:
    client, calls = clean_run()

    report = check(client, calls, [])

    assert report.ok
    assert report.counts() == {
        "lost": 0,
        "unexplained_duplicates": 0,
        "order_violations": 0,
        "one_at_a_time_violations": 0,
    }
    assert (report.requests, report.acknowledged, report.delivered) == (6, 6, 6)
    assert report.delays == [1.0] * 6


def test_retries_before_the_accept_and_refused_requests_are_fine() -> None:
    client = [ack("k", 1, 0.0), refused("k", 2, 1.0), refused("k", 3, 2.0, status=503)]
    calls = [
        call("k", 1, 0.1, outcome="refused"),
        call("k", 1, 0.3, outcome="client_gone"),
        call("k", 1, 0.6),
    ]

    report = check(client, calls, [])

    assert report.ok
    assert (report.acknowledged, report.delivered) == (1, 1)


def test_an_acknowledged_message_never_accepted_is_lost() -> None:
    client = [ack("k", 1, 0.0), ack("k", 2, 1.0)]
    calls = [call("k", 1, 0.5), call("k", 2, 1.5, outcome="refused")]

    report = check(client, calls, [])

    assert report.lost == [("k", 2)]
    assert not report.ok


def test_a_reset_or_a_500_after_acceptance_counts_as_delivered() -> None:
    client = [ack("k", 1, 0.0), ack("k", 2, 1.0)]
    calls = [call("k", 1, 0.5, outcome="reset"), call("k", 2, 1.5, outcome="accepted_error")]

    assert check(client, calls, []).lost == []


def test_a_message_delivered_without_acknowledgement_is_counted_not_lost() -> None:
    report = check([refused("k", 1, 0.0)], [call("k", 1, 0.5)], [])

    assert report.ok
    assert report.delivered_unacknowledged == 1


def test_a_duplicate_without_a_fault_nearby_is_unexplained() -> None:
    client = [ack("k", 1, 0.0)]
    calls = [call("k", 1, 1.0), call("k", 1, 9.0)]
    far_kill = FaultRecord("worker_kill", "worker:0", 20.0, 21.0)
    redis_kill = FaultRecord("redis_kill", "redis", 0.5, 2.0)

    report = check(client, calls, [far_kill, redis_kill])

    assert report.duplicates == [Duplicate("k", 1, 2, None)]
    assert report.counts()["unexplained_duplicates"] == 1
    assert not report.ok


def test_a_duplicate_around_an_ambiguous_fault_is_explained() -> None:
    client = [ack("k", 1, 0.0)]
    calls = [call("k", 1, 1.0, ended=1.1), call("k", 1, 9.0)]
    # The accept ended 1.9 s before the kill: within the 2 s window.
    kill = FaultRecord("worker_kill", "worker:1", 3.0, 4.0)

    report = check(client, calls, [kill])

    assert report.duplicates == [Duplicate("k", 1, 2, "worker_kill")]
    assert report.ok


def test_a_provider_fault_explains_calls_that_arrived_during_it() -> None:
    calls = [call("k", 1, 5.0, ended=5.0, outcome="reset"), call("k", 1, 6.0)]
    reset = FaultRecord("provider_reset", "provider", 4.0, 4.5)

    report = check([ack("k", 1, 0.0)], calls, [reset])

    assert report.duplicates[0].explained_by == "provider_reset"


def test_a_database_outage_stretches_the_window_of_a_worker_kill_back() -> None:
    calls = [call("k", 1, 1.0, ended=1.1), call("k", 1, 20.0)]
    kill = FaultRecord("worker_kill", "worker:0", 6.0, 7.0)
    outage = FaultRecord("postgres_restart", "postgres", 1.5, 5.0)

    without = check([ack("k", 1, 0.0)], calls, [kill])
    with_outage = check([ack("k", 1, 0.0)], calls, [kill, outage])

    assert without.duplicates[0].explained_by is None
    assert with_outage.duplicates[0].explained_by == "worker_kill"


def test_a_later_message_delivered_before_an_earlier_one_is_an_order_violation() -> None:
    client = [ack("k", 1, 0.0, answered=0.1), ack("k", 2, 0.2), ack("k", 3, 0.4)]
    calls = [call("k", 2, 1.0), call("k", 1, 2.0), call("k", 3, 3.0)]

    report = check(client, calls, [])

    assert report.order == [OrderViolation("k", 1, 2)]
    assert report.counts()["order_violations"] == 1


def test_messages_sent_before_the_earlier_was_acknowledged_have_no_order() -> None:
    # k/2 was sent before k/1 was answered: their acceptance order is undefined.
    client = [ack("k", 1, 0.0, answered=0.5), ack("k", 2, 0.2)]
    calls = [call("k", 2, 1.0), call("k", 1, 2.0)]

    assert check(client, calls, []).order == []


def test_order_is_per_key() -> None:
    client = [ack("a", 1, 0.0), ack("b", 1, 0.2)]
    calls = [call("b", 1, 1.0), call("a", 1, 2.0)]

    assert check(client, calls, []).order == []


def test_overlapping_calls_of_two_messages_of_one_key_break_one_at_a_time() -> None:
    client = [ack("k", 1, 0.0), ack("k", 2, 0.1)]
    calls = [call("k", 1, 1.0, ended=5.0, outcome="client_gone"), call("k", 2, 4.0, ended=4.1)]

    report = check(client, calls, [])

    assert report.overlaps == [Overlap("k", 1, 2, 4.0)]
    assert report.counts()["one_at_a_time_violations"] == 1


def test_an_overlap_with_a_retry_of_the_same_message_or_another_key_is_fine() -> None:
    client = [ack("k", 1, 0.0), ack("j", 1, 0.0), ack("k", 2, 3.0)]
    calls = [
        call("k", 1, 1.0, ended=3.0, outcome="client_gone"),
        call("k", 1, 2.0, ended=2.5),  # taken over while the first call hangs
        call("j", 1, 2.2, ended=2.3),  # another key
        call("k", 2, 3.0, ended=3.1),  # starts exactly when the first call ended
    ]

    report = check(client, calls, [])

    assert report.overlaps == []
    assert report.duplicates == []


def test_an_overlap_is_found_behind_a_retry_of_the_same_message() -> None:
    calls = [call("k", 1, 1.0, ended=9.0), call("k", 2, 2.0, ended=2.5), call("k", 2, 3.0)]

    report = check([], calls, [])

    assert [o.n for o in report.overlaps] == [2, 2]


def test_faults_are_counted_by_kind_and_exits_by_child() -> None:
    faults = [
        FaultRecord("redis_kill", "redis", 1.0, 2.0),
        FaultRecord("redis_kill", "redis", 5.0, 6.0),
        FaultRecord("api_kill", "api", 3.0, 4.0),
        FaultRecord("worker_exit", "worker:1", 4.0, 4.0, {"returncode": 1}),
    ]

    report = check([], [], faults)

    assert report.faults == {"api_kill": 1, "redis_kill": 2}
    assert report.exits == {"worker:1": 1}
    assert report.misfired == []


def test_faults_that_misfired_are_listed() -> None:
    failed = FaultRecord("redis_busy", "redis", 1.0, 2.0, {"error": "ConnectionError: refused"})
    data_lost = FaultRecord("redis_readonly", "redis", 3.0, 4.0, {"data_kept": False})
    fine = FaultRecord("redis_readonly", "redis", 5.0, 6.0, {"data_kept": True})

    assert check([], [], [failed, data_lost, fine]).misfired == [failed, data_lost]


def test_a_worker_that_exits_on_its_own_explains_a_duplicate_like_a_kill() -> None:
    calls = [call("k", 1, 1.0), call("k", 1, 20.0)]
    exited = FaultRecord("worker_exit", "worker:2", 2.0, 2.0, {"returncode": 1})

    assert check([ack("k", 1, 0.0)], calls, [exited]).duplicates[0].explained_by == "worker_exit"


def test_calls_of_other_campaigns_and_other_bodies_are_ignored() -> None:
    rows = [
        {"body": message_body("tok", "k007", 3), "received_at": 1.0, "ended_at": 1.1,
         "outcome": "accepted", "accepted": True},
        {"body": message_body("other", "k007", 3), "received_at": 1.0, "ended_at": 1.1,
         "outcome": "accepted", "accepted": True},
        {"body": None, "text": message_body("tok", "k1", 1), "received_at": 2.0,
         "ended_at": 2.1, "outcome": "reset", "accepted": True},
        {"body": "Test", "received_at": 1.0, "ended_at": 1.1, "outcome": "accepted",
         "accepted": True},
    ]  # fmt: skip

    calls = provider_calls(rows, "tok")

    assert [(c.key, c.n, c.outcome) for c in calls] == [("k007", 3, "accepted"), ("k1", 1, "reset")]
    assert parse_body("chaos tok k1 x", "tok") is None
    assert parse_body(42, "tok") is None


def test_a_route_down_explains_a_duplicate_only_when_it_held_calls() -> None:
    client = [ack("k", 1, 0.0)]
    calls = [call("k", 1, 10.0), call("k", 1, 20.0)]
    held = FaultRecord("route_down", "route", 9.0, 15.0, {"hang_ms": 4000})
    refusing = FaultRecord("route_down", "route", 9.0, 15.0, {"status": 503})

    # A timed-out call to a held account may have been accepted after all; a 503 took nothing.
    assert check(client, calls, [held]).duplicates == [Duplicate("k", 1, 2, "route_down")]
    assert check(client, calls, [refusing]).unexplained == [Duplicate("k", 1, 2, None)]
