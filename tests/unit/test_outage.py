"""A worker loop's outage bookkeeping: bounded jittered backoff, two log lines per outage."""

from __future__ import annotations

import logging

import pytest

from postline.worker.outage import Outage


def test_backoff_grows_to_its_cap_and_resets_on_success(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("reading", logging.getLogger("test.outage"), first=0.1, cap=1.0)
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        delays = [outage.failed(ConnectionError("refused")) for _ in range(12)]
        outage.ok()
        after = outage.failed(ConnectionError("refused"))
    assert all(0 < d <= 1.0 for d in delays)
    assert max(delays[-4:]) > 0.4  # it grew towards the cap
    assert after <= 0.1  # a new outage starts small again
    lines = [r.getMessage() for r in caplog.records]
    assert sum("dependency unavailable" in line for line in lines) == 2  # once per outage
    assert sum("recovered after" in line for line in lines) == 1
    assert "12 failed tries" in next(line for line in lines if "recovered" in line)


def test_success_without_an_outage_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("reading", logging.getLogger("test.outage"))
    with caplog.at_level(logging.DEBUG, logger="test.outage"):
        outage.ok()
    assert caplog.records == [] and not outage.ongoing
