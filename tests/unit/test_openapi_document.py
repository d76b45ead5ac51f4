"""The OpenAPI document says everything a client needs, built without a server.

Every field described (with the limits the code enforces), an example per
channel that the API would accept, the bearer scheme on the routes behind
the key, and on every route each error status with an example per code.
The contract test (tests/acceptance/test_openapi.py) checks the other way:
that the running API answers nothing the document does not declare.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.api.app import create_app
from postline.api.bodies import MAX_REQUEST_BYTES
from postline.api.errors import ApiError
from postline.api.responses import PROBLEMS
from postline.api.schemas import MessageCreate
from postline.domain import validation
from postline.domain.channels import Channel
from postline.settings import Settings

API_DIR = Path(__file__).resolve().parents[2] / "src" / "postline" / "api"
PUBLIC = {"/health", "/health/live"}
WEBHOOKS = "/api/v1/webhooks/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url="postgresql://unused/db", redis_url="redis://unused"
    )
    return create_app(settings).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_property_and_object_is_described(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, value in schema.get("properties", {}).items()
        if not value.get("description")
    ]
    assert not missing, f"properties without a description: {missing}"
    undescribed = [
        name
        for name, schema in schemas.items()
        if "properties" in schema and not schema.get("description")
    ]
    assert not undescribed, f"objects without a description: {undescribed}"
    assert sum(len(s.get("properties", {})) for s in schemas.values()) >= 70


@pytest.mark.parametrize(
    ("field", "quoted"),
    [
        ("body", str(validation.MAX_TEXT_CHARS)),
        ("body", f"{validation.MAX_EMAIL_BYTES:,}"),
        ("html", f"{validation.MAX_EMAIL_BYTES:,}"),
        ("metadata", f"{validation.MAX_METADATA_BYTES:,}"),
        ("attachments", str(validation.MAX_MMS_ATTACHMENTS)),
        ("attachments", str(validation.MAX_URL_CHARS)),
        ("ordering_key", str(validation.MAX_ORDERING_KEY_CHARS)),
        ("subject", str(validation.MAX_SUBJECT_CHARS)),
        ("callback_url", str(validation.MAX_URL_CHARS)),
        ("callback_url", "CALLBACK_SIGNING_SECRET"),
        ("to", "E.164"),
        ("to", "whatsapp:"),
        ("from", "Name <addr>"),
        ("send_at", "scheduled"),
    ],
)
def test_send_fields_quote_the_limits_the_code_enforces(
    document: dict[str, Any], field: str, quoted: str
) -> None:
    properties = document["components"]["schemas"]["MessageCreate"]["properties"]
    assert quoted in properties[field]["description"]


def test_the_introduction_quotes_the_request_limits(document: dict[str, Any]) -> None:
    intro = document["info"]["description"]
    assert f"{MAX_REQUEST_BYTES:,}" in intro
    assert "Authorization: Bearer" in intro
    for problem in PROBLEMS.values():
        assert f"`{problem.code}`" in intro


def _send_examples(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in body["examples"].items()}


def test_each_channel_has_a_send_example_the_api_accepts(document: dict[str, Any]) -> None:
    values = _send_examples(document, "/api/v1/messages/send")
    assert {v["type"] for v in values.values()} == {c.value for c in Channel}
    for value in values.values():
        MessageCreate.model_validate(value)
    email = next(v for v in values.values() if v["type"] == "email")
    assert email["attachments"], "the email example shows an attachment"
    schema_examples = document["components"]["schemas"]["MessageCreate"]["examples"]
    assert {e["type"] for e in schema_examples} == {c.value for c in Channel}


def test_the_batch_example_holds_every_channel(document: dict[str, Any]) -> None:
    values = _send_examples(document, "/api/v1/messages/batch")
    assert values
    for value in values.values():
        for item in value["messages"]:
            MessageCreate.model_validate(item)
    assert {i["type"] for v in values.values() for i in v["messages"]} == {c.value for c in Channel}


def test_bearer_auth_is_declared_on_every_route_behind_the_key(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    for path, method, operation in operations(document):
        behind_key = path.startswith("/api/v1/") and not path.startswith(WEBHOOKS)
        expected = [{"bearerAuth": []}] if behind_key else None
        assert operation.get("security") == expected, f"{method.upper()} {path}"


def test_every_route_declares_its_errors_with_an_example_per_code(
    document: dict[str, Any],
) -> None:
    envelope = "#/components/schemas/ErrorEnvelope"
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
        if path in PUBLIC:
            continue  # /health answers its own shape (503 HealthPublic); /health/live never fails
        assert errors, f"{where} declares no error response"
        for status, response in errors.items():
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": envelope}, f"{where} {status}"
            declared = content["examples"]
            assert declared, f"{where} {status} has no example"
            for code, example in declared.items():
                assert PROBLEMS[code].status == int(status), f"{where}: {code} under {status}"
                assert example["value"]["error"]["code"] == code
                assert f"`{code}`" in response["description"]
        if operation.get("security"):
            assert "401" in errors, f"{where} is behind the key but does not declare 401"


def test_no_route_keeps_the_framework_422_shape(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for _, _, operation in operations(document):
        for response in operation["responses"].values():
            ref = response.get("content", {}).get("application/json", {}).get("schema", {})
            assert ref.get("$ref") != "#/components/schemas/HTTPValidationError"


def _raised_codes() -> set[str]:
    """Every error code a constant in postline/api raises or renders (not 500)."""
    codes: set[str] = set()
    for source in API_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            keywords = {
                k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)
            }
            if node.func.id == "ApiError" and args:
                codes.add(keywords.get("code") or ApiError(args[0], "").code)
            elif node.func.id == "envelope" and len(args) >= 2 and args[0] != 500:
                codes.add(args[1])
    return codes


def test_every_code_the_api_raises_is_documented() -> None:
    raised = _raised_codes()
    assert {"not_found", "not_retryable", "database_unavailable"} <= raised  # the scan works
    assert raised - set(PROBLEMS) == set()


def test_docs_pages_are_not_operations(document: dict[str, Any]) -> None:
    assert not {"/docs", "/redoc"} & set(document["paths"])
