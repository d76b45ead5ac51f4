"""Laying outcome counts out as the dashboard's series (`postline.domain.activity`)."""

from __future__ import annotations

from postline.domain.activity import Count, Window, error_ratio, lay_out, rates_now


def test_the_window_ends_before_the_bucket_in_progress() -> None:
    window = Window(width=5, points=4, now=1000.0 + 2.5)  # bucket 200 is in progress
    assert (window.current, window.first, window.start) == (200, 196, 980.0)


def test_counts_land_in_their_bucket_and_outside_ones_are_dropped() -> None:
    window = Window(width=5, points=4, now=1002.5)
    counts = [
        Count(196, "sms", "sent", 3),  # first bucket
        Count(199, "sms", "sent", 2),  # last complete bucket
        Count(199, "sms", "retrying", 1),
        Count(199, "email", "failed", 4),
        Count(200, "sms", "sent", 9),  # in progress: not shown yet
        Count(195, "sms", "sent", 9),  # before the window
        Count(199, "sms", "delivered", 9),  # not an attempt outcome
    ]
    laid = lay_out(counts, window, ["sms", "mms", "email"])
    assert laid["sms"] == {"sent": [3, 0, 0, 2], "failed": [0] * 4, "retried": [0, 0, 0, 1]}
    assert laid["email"]["failed"] == [0, 0, 0, 4]
    assert laid["mms"] == {"sent": [0] * 4, "failed": [0] * 4, "retried": [0] * 4}


def test_a_key_not_asked_for_still_shows() -> None:
    laid = lay_out([Count(10, "other", "sent", 1)], Window(width=5, points=2, now=55.0), [])
    assert laid == {"other": {"sent": [0, 1], "failed": [0, 0], "retried": [0, 0]}}


def test_the_rate_now_is_the_last_bucket_over_its_width() -> None:
    series = {"sent": [50, 0, 25], "failed": [0, 0, 1], "retried": [0, 0, 0]}
    assert rates_now(series, 5) == {
        "sent_per_second": 5.0, "failed_per_second": 0.2, "retried_per_second": 0.0,
    }  # fmt: skip


def test_error_ratio_needs_an_attempt() -> None:
    assert error_ratio(0, 0) is None
    assert error_ratio(3, 1) == 0.3333
