"""The reconciler's rule for a key's head, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postline.domain.channels import Channel
from postline.domain.ordering import Head, plan_repairs
from postline.domain.statuses import Status

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def head(status: Status, *, due_in: float | None = None, lease_lost: bool = False) -> Head:
    at = None if due_in is None else NOW + timedelta(seconds=due_in)
    return Head(f"{status}-{due_in}-{lease_lost}", Channel.SMS, "k", status, at, lease_lost)


def test_a_pending_head_that_nothing_queued_is_pushed() -> None:
    plan = plan_repairs([head(Status.PENDING)], queued=set(), now=NOW)
    assert [h.status for h in plan.push] == [Status.PENDING] and plan.delay == []


def test_a_queued_head_is_left_alone() -> None:
    h = head(Status.PENDING)
    plan = plan_repairs([h], queued={h.id}, now=NOW)
    assert plan.push == [] and plan.delay == []


def test_a_retry_not_yet_due_goes_to_the_delay_set_not_the_stream() -> None:
    h = head(Status.RETRYING, due_in=30)
    plan = plan_repairs([h], queued=set(), now=NOW)
    assert plan.push == [] and plan.delay == [h]


def test_a_due_retry_that_nothing_queued_is_pushed() -> None:
    h = head(Status.RETRYING, due_in=-1)
    assert plan_repairs([h], queued=set(), now=NOW).push == [h]
    assert plan_repairs([h], queued={h.id}, now=NOW).push == []


def test_a_live_lease_is_a_worker_at_work() -> None:
    h = head(Status.SENDING)
    plan = plan_repairs([h], queued=set(), now=NOW)
    assert plan.push == [] and plan.delay == []


def test_a_lost_lease_is_queued_for_a_takeover() -> None:
    h = head(Status.SENDING, lease_lost=True)
    assert plan_repairs([h], queued=set(), now=NOW).push == [h]


statuses = st.sampled_from([Status.PENDING, Status.RETRYING, Status.SENDING])


@given(
    st.lists(
        st.tuples(
            statuses, st.one_of(st.none(), st.floats(-100, 100)), st.booleans(), st.booleans()
        )
    )
)
def test_every_head_ends_somewhere_and_nothing_is_queued_twice(
    cases: list[tuple[Status, float | None, bool, bool]],
) -> None:
    """After the repairs, each head is queued, delayed or leased; queued ones are not pushed."""
    heads = [
        Head(str(i), Channel.SMS, f"k{i}", status,
             None if due is None else NOW + timedelta(seconds=due), lost)
        for i, (status, due, lost, _) in enumerate(cases)
    ]  # fmt: skip
    queued = {h.id for h, (_, _, _, q) in zip(heads, cases, strict=True) if q}
    plan = plan_repairs(heads, queued=queued, now=NOW)
    pushed, delayed = {h.id for h in plan.push}, {h.id for h in plan.delay}
    assert not pushed & queued and not pushed & delayed
    for h in heads:
        leased = h.status == Status.SENDING and not h.lease_lost
        assert h.id in pushed | delayed | queued or leased
        waiting = h.status == Status.RETRYING and h.next_attempt_at is not None
        if waiting and h.next_attempt_at is not None and h.next_attempt_at > NOW:
            assert h.id not in pushed  # a retry never goes out before its time
