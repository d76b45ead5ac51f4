"""A worker loop's outage bookkeeping: bounded jittered backoff, two log lines per outage,
and which dependency an error blames (the one that must answer before the outage ends)."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from postline.worker.outage import POSTGRESQL, REDIS, Outage, dependency_of


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


def test_errors_blame_their_dependency() -> None:
    assert dependency_of(RedisConnectionError("refused")) == REDIS
    assert dependency_of(ResponseError("BUSY Redis is busy running a script")) == REDIS
    assert dependency_of(ConnectionRefusedError(111, "refused")) == POSTGRESQL
    assert dependency_of(asyncpg.exceptions.CannotConnectNowError("starting")) == POSTGRESQL
    assert dependency_of(ValueError("a bug")) is None


def test_an_outage_remembers_its_cause_until_it_ends() -> None:
    outage = Outage("reading", logging.getLogger("test.outage"))
    outage.failed(ConnectionRefusedError(111, "refused"))
    assert outage.cause == POSTGRESQL
    outage.failed(RedisConnectionError("refused"))
    assert outage.cause == REDIS  # the latest failure names what to wait for
    outage.ok()
    assert outage.cause is None and not outage.ongoing
