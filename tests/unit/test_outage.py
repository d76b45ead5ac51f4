"""A worker loop's outage bookkeeping: bounded jittered backoff, two log lines per outage,
and which dependency an error blames (the one that must answer before the outage ends)."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from postline.worker.outage import DEPENDENCY_ERRORS, POSTGRESQL, REDIS, Outage, dependency_of


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


#: Redis's error replies that the README says a worker rides out, as the server sends them.
REDIS_REPLIES = [
    "LOADING Redis is loading the dataset in memory",
    "READONLY You can't write against a read only replica.",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "UNBLOCKED force unblock from blocking operation, instance state changed",
    "NOGROUP No such key 'message_queue:sms' or consumer group 'workers'",
]


@pytest.mark.parametrize("reply", REDIS_REPLIES, ids=lambda r: r.split()[0])
def test_every_redis_error_reply_named_is_an_outage_of_redis(reply: str) -> None:
    error = BaseParser.parse_error(reply)  # the exception redis-py raises for that reply
    assert isinstance(error, DEPENDENCY_ERRORS)
    assert dependency_of(error) == REDIS


@pytest.mark.parametrize(
    "error",
    [RedisConnectionError("Connection reset by peer"), RedisTimeoutError("Timeout reading"),
     ConnectionResetError(104, "reset"), TimeoutError(), asyncpg.exceptions.AdminShutdownError("x"),
     asyncpg.exceptions.CannotConnectNowError("the database system is starting up")],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_resets_timeouts_and_restarts_are_outages(error: BaseException) -> None:
    assert isinstance(error, DEPENDENCY_ERRORS)
    assert dependency_of(error) is not None
