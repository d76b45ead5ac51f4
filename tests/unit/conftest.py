"""The unit tier: no server, whole tier in seconds.

A unit test that asks, even through another fixture, for a fixture that
starts PostgreSQL or Redis is refused at collection: it belongs in
tests/integration, and would otherwise start embedded servers on a machine
without DATABASE_URL/REDIS_URL.

Hypothesis profiles: `dev` (the default) and `ci`, chosen when CI=true or by
HYPOTHESIS_PROFILE. `ci` is derandomized, so a red build is reproducible
from its log; both allow a second per example, which a loaded two-core
runner meets. Hypothesis settings are process-wide, so the profile also
applies to property tests outside this folder that set no values of their own.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import settings

SERVER_FIXTURES = frozenset({"test_servers", "own_redis"})
HERE = Path(__file__).parent

settings.register_profile("dev", deadline=timedelta(seconds=1))
settings.register_profile("ci", deadline=timedelta(seconds=1), derandomize=True, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offenders = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(HERE)
        and SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if offenders:
        raise pytest.UsageError(
            "unit tests may not start servers; move these to tests/integration: "
            + ", ".join(offenders)
        )
