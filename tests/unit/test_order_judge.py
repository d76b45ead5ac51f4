"""The order checker the fault tests rely on: it must see what it claims to see."""

from __future__ import annotations

from tests.support.order import Call, judge, overlaps

EXPECTED = {"a": ["a:0", "a:1", "a:2"], "b": ["b:0"]}


def calls(*tags: str, ok: bool = True) -> list[Call]:
    return [Call(t.split(":")[0], t, ok, seq) for seq, t in enumerate(tags, 1)]


def test_in_order_is_clean() -> None:
    report = judge(calls("a:0", "b:0", "a:1", "a:2"), EXPECTED)
    assert (report.overtakes, report.duplicates, report.missing, report.sent) == (0, 0, [], 4)


def test_failed_attempts_of_the_head_are_not_overtakes() -> None:
    tried = [*calls("a:0", ok=False), *calls("a:0", "a:1", "a:2", "b:0")]
    assert judge(tried, EXPECTED).overtakes == 0


def test_a_call_for_a_later_message_before_the_head_is_sent_is_an_overtake() -> None:
    tried = [*calls("a:0", ok=False), *calls("a:1", "a:0", "a:2", "b:0")]
    report = judge(tried, EXPECTED)
    assert report.overtakes == 1 and report.missing == []


def test_a_failed_call_out_of_turn_also_counts() -> None:
    tried = [*calls("a:2", ok=False), *calls("a:0", "a:1", "a:2", "b:0")]
    assert judge(tried, EXPECTED).overtakes == 1


def test_duplicates_and_missing() -> None:
    report = judge(calls("a:0", "a:0", "a:1"), EXPECTED)
    assert report.duplicates == 1
    assert report.missing == ["a:2", "b:0"]


def test_overlaps_need_the_next_call_to_arrive_before_the_answer() -> None:
    one = Call("a", "a:0", True, 1, received=10.0, answered=11.0)
    after = Call("a", "a:1", True, 2, received=11.5, answered=12.0)
    during = Call("a", "a:1", True, 2, received=10.5, answered=12.0)
    other_key = Call("b", "b:0", True, 3, received=10.5, answered=10.6)
    assert overlaps([one, after, other_key]) == 0
    assert overlaps([one, during]) == 1
