"""Every error code the API answers, and the error responses each route declares.

Routes raise `ApiError(status, message, code=...)`; the envelope is drawn in
`errors.py`. This module is the catalogue a client reads: for each code, its
status, when it happens and an example answer. A route declares its
errors with `error_responses("not_found", ...)`, which groups the codes by
status into OpenAPI responses with one named example per code. A unit test
checks that every code raised under `postline/api` is listed here, and the
contract test that no route answers a status it does not declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postline.api.bodies import MAX_REQUEST_BYTES
from postline.api.schemas import ErrorEnvelope
from postline.providers.signatures import SENDGRID_MAX_SKEW_SECONDS


@dataclass(frozen=True, slots=True)
class Problem:
    """One error code: its status, when it is answered, an example message."""

    status: int
    code: str
    when: str
    message: str


PROBLEMS: dict[str, Problem] = {
    p.code: p
    for p in (
        Problem(
            400,
            "invalid_idempotency_key",
            "the `Idempotency-Key` header is empty, longer than its documented `maxLength` "
            "or holds a control character",
            "Idempotency-Key must not be empty",
        ),
        Problem(
            400,
            "client_disconnected",
            "the client closed the connection before its whole body arrived",
            "a request ended before its body did",
        ),
        Problem(
            400,
            "bad_request",
            "the body is not what the route reads",
            "the body must be a JSON array of events",
        ),
        Problem(
            401,
            "unauthorized",
            "`API_KEYS` is set and the request has no `Authorization: Bearer <key>` header "
            "with one of them",
            "a valid 'Authorization: Bearer <key>' header is required",
        ),
        Problem(
            403,
            "forbidden",
            "the provider's signature is missing or wrong, the server has no key to check it, "
            f"or a SendGrid batch is signed more than {SENDGRID_MAX_SKEW_SECONDS // 60} minutes "
            "from now (replay)",
            "missing or invalid X-Twilio-Signature",
        ),
        Problem(404, "not_found", "no message has that id", "no message with that id"),
        Problem(
            409,
            "idempotency_key_reused",
            "the `Idempotency-Key` was used in the last 24 h with a different body (the same "
            "body answers `200` with the first message)",
            "this Idempotency-Key was used with a different body",
        ),
        Problem(
            409,
            "not_cancellable",
            "the message is not `scheduled`, `pending` or `retrying`",
            "a sent message cannot be cancelled",
        ),
        Problem(
            409,
            "not_retryable",
            "the message is not `failed`",
            "only failed messages can be retried, not delivered",
        ),
        Problem(
            413,
            "payload_too_large",
            "the body is larger than the route accepts (see its description)",
            f"a request may be at most {MAX_REQUEST_BYTES} bytes",
        ),
        Problem(
            415,
            "unsupported_media_type",
            "the `Content-Type` is not `application/json`",
            "the body must be JSON (Content-Type: application/json)",
        ),
        Problem(
            422,
            "validation_error",
            "a field breaks a rule (each is in `details`), the body is not plain JSON, or a "
            "query parameter is not valid",
            "to: must be an E.164 number: '+' then 8 to 15 digits, the first 1-9",
        ),
        Problem(
            503,
            "database_unavailable",
            "PostgreSQL does not answer: a send was not stored, and may be sent again later",
            "the database is unavailable",
        ),
        Problem(
            503,
            "redis_unavailable",
            "Redis does not answer, so queue depths cannot be read",
            "redis unavailable",
        ),
        Problem(
            503,
            "database_and_redis_unavailable",
            "neither PostgreSQL nor Redis answers",
            "database and redis unavailable",
        ),
        Problem(
            503,
            "service_unavailable",
            "another server Postline needs does not answer",
            "a server Postline needs is unavailable",
        ),
    )
}

# What every route behind the API key may answer, whatever it does.
AUTHED = ("unauthorized", "database_unavailable", "service_unavailable")


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses for `codes`: one per status, an example per code."""
    by_status: dict[int, list[Problem]] = {}
    for code in codes:
        problem = PROBLEMS[code]
        by_status.setdefault(problem.status, []).append(problem)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, problems in sorted(by_status.items()):
        responses[status] = {
            "model": ErrorEnvelope,
            "description": "; ".join(f"`{p.code}`: {p.when}" for p in problems) + ".",
            "content": {"application/json": {"examples": {p.code: _example(p) for p in problems}}},
        }
    return responses


def _example(problem: Problem) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if problem.code == "validation_error":
        details = [{"loc": ["to"], "msg": problem.message.partition(": ")[2], "type": "send_rule"}]
    body = {"code": problem.code, "message": problem.message, "details": details}
    return {"summary": problem.when, "value": {"error": body}}
