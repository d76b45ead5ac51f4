"""The OpenAPI document is the truth: fuzz every operation against it.

Schemathesis generates requests from the document (valid and invalid) and
checks every answer: never a 5xx, status codes, content types and bodies
as documented.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support.harness import SIM_KEY, SIM_SID, SIM_TOKEN, free_port
from tests.support.processes import running

API_KEY = "schema-test-key-0123456789"
# What the document promises. Not `positive_data_acceptance`: the channel rules
# (E.164 forms, email syntax, per-channel fields) are richer than JSON Schema
# says, so a schema-valid body may rightly get 422; the hostile-input table
# covers those rules one by one.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture(scope="module")
def api_url(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_KEYS": API_KEY,
        "TWILIO_ACCOUNT_SID": SIM_SID,
        "TWILIO_AUTH_TOKEN": SIM_TOKEN,
        "SENDGRID_API_KEY": SIM_KEY,
        "CALLBACK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        # No generated callback_url may send a DNS query off this machine.
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",
        "LOG_LEVEL": "WARNING",
    }
    log: Path = tmp_path_factory.mktemp("openapi") / "api.log"
    with running(["api", "--port", str(port)], env, log, f"{url}/health"):
        yield url


def test_every_operation_keeps_its_contract(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    failures: list[str] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
