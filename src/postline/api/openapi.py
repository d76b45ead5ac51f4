"""The parts of the OpenAPI document FastAPI cannot derive from the routes.

The send, batch and suppression bodies are read raw (for speed and the error envelope),
so their schemas are added here by hand; the document's introduction (auth,
errors, limits) is written here too, its numbers taken from the constants
that enforce them. `/docs` and `/redoc` render this document (`docs.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from postline.api import docs, examples
from postline.api.bodies import MAX_REQUEST_BYTES
from postline.api.responses import PROBLEMS
from postline.api.routes.collection import MAX_BATCH
from postline.api.routes.suppressions import SuppressionCreate
from postline.api.schemas import MessageCreate
from postline.domain.validation import (
    MAX_EMAIL_BYTES,
    MAX_METADATA_BYTES,
    MAX_MMS_ATTACHMENTS,
    MAX_ORDERING_KEY_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    MAX_URL_CHARS,
)

_CODES = "\n".join(
    f"| `{p.status}` | `{p.code}` | {p.when} |"
    for p in sorted(PROBLEMS.values(), key=lambda p: p.status)
)

DESCRIPTION = f"""Postline accepts SMS, MMS, WhatsApp and email messages, stores each in
PostgreSQL before it answers, and workers deliver them through Twilio and SendGrid
with retries, per-key ordering and delivery receipts.

**Auth.** When the server sets `API_KEYS`, every `/api/v1/messages*`,
`/api/v1/suppressions*` and `/api/v1/stats` call needs
`Authorization: Bearer <key>` (`401` otherwise).
Health, metrics, provider webhooks and these pages need none.

**Errors.** Every 4xx and 5xx answer is
`{{"error": {{"code": "...", "message": "...", "details": [...]}}}}`; each route lists
the codes it answers. Bad input is never a 500.

| status | code | when |
|---|---|---|
{_CODES}

**Limits.**

| what | limit |
|---|---|
| request (send or batch) | {MAX_REQUEST_BYTES:,} bytes (`413` above) |
| batch | 1 to {MAX_BATCH} messages |
| sms, mms, whatsapp `body` | {MAX_TEXT_CHARS} characters (code points) |
| email `body` + `html` | {MAX_EMAIL_BYTES:,} bytes of UTF-8 |
| email `subject` | {MAX_SUBJECT_CHARS} characters, one line |
| `metadata` | {MAX_METADATA_BYTES:,} bytes as compact JSON |
| mms `attachments` | 1 to {MAX_MMS_ATTACHMENTS} URLs; whatsapp: at most 1 |
| any URL | {MAX_URL_CHARS} characters, http or https |
| `ordering_key` | 1 to {MAX_ORDERING_KEY_CHARS} characters |

The same document renders at `{docs.SWAGGER_PATH}` (try requests) and
`{docs.REDOC_PATH}` (read), both served by Postline itself."""


def install(app: FastAPI) -> None:
    """Adds the hand-written parts to `app.openapi()`."""
    app.description = DESCRIPTION
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        _drop_default_422(schema["paths"], components)
        _add_bodies(components)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_default_422(paths: dict[str, Any], components: dict[str, Any]) -> None:
    """Removes the `422` FastAPI adds, in its own shape, to each route with parameters.

    Postline answers every 422 in the error envelope, and the routes that can
    answer one declare it (`validation_error`); a path parameter read as a
    string never fails validation, so elsewhere there is none to document.
    """
    default = "#/components/schemas/HTTPValidationError"
    for operations in paths.values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == default:
                del operation["responses"]["422"]
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def _add_bodies(components: dict[str, Any]) -> None:
    for model in (MessageCreate, SuppressionCreate):
        defs = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for name, definition in defs.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = defs
    components["BatchCreate"] = {
        "title": "BatchCreate",
        "description": "Up to a batch's limit of send bodies, each checked on its own.",
        "type": "object",
        "required": ["messages"],
        "additionalProperties": False,
        "properties": {
            "messages": {
                "description": f"1 to {MAX_BATCH} send bodies (`MessageCreate`), any channels.",
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": {"$ref": "#/components/schemas/MessageCreate"},
            }
        },
        "examples": [e["value"] for e in examples.BATCH.values()],
    }
