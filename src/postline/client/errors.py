"""What the client raises. Catch `ClientError` for all of it.

ClientError
 ├── ApiError                the API's error envelope: status, code, message, details
 │    ├── BadRequest         400: e.g. an empty Idempotency-Key
 │    ├── Unauthorized       401: no or a wrong API key
 │    ├── Forbidden          403
 │    ├── NotFound           404: no message with that id
 │    ├── Conflict           409: cancel/retry from the wrong status, an Idempotency-Key reused
 │    ├── PayloadTooLarge    413: a request over 2 MB
 │    ├── ValidationError    422: `details` names the fields ({"loc", "msg", "type"})
 │    ├── RateLimited        429: still refused after the retries
 │    └── ServerError        5xx
 │         └── Unavailable   503: still unavailable after the retries (nothing was stored)
 ├── Unreachable             no answer after the retries (connection refused, timeouts)
 ├── UnexpectedAnswer        an answer that is not the API's JSON (a proxy's page, say)
 └── InvalidCallback         `verify_callback` refused a callback
      ├── BadSignature       no signature matches: tampered, or another secret
      └── StaleCallback      its timestamp is outside the tolerance: a replay, or a skewed clock

This module imports nothing from the server: the client may ship alone.
"""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """Base of every error the Postline client raises."""


class ApiError(ClientError):
    """The API refused a request; the fields are its error envelope's (SPEC 3)."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: list[Any] = details or []


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401: the API has API_KEYS set and this client's key is missing or wrong."""


class Forbidden(ApiError):
    """403."""


class NotFound(ApiError):
    """404: no message with that id."""


class Conflict(ApiError):
    """409: `not_cancellable`, `not_retryable`, `idempotency_key_reused`, ..."""


class PayloadTooLarge(ApiError):
    """413."""


class ValidationError(ApiError):
    """422: the message breaks a rule; `details` says which field."""


class RateLimited(ApiError):
    """429, after the client's retries."""


class ServerError(ApiError):
    """5xx."""


class Unavailable(ServerError):
    """503 after the client's retries: the API could not store anything."""


class Unreachable(ClientError):
    """The request got no answer, after the retries; the cause is httpx's error."""


class UnexpectedAnswer(ClientError):
    """The answer is not what the API sends: not JSON, or not the expected shape."""


class InvalidCallback(ClientError):
    """A callback that must not be trusted: a header missing or malformed."""


class BadSignature(InvalidCallback):
    """No `v1` signature of the callback matches the secret."""


class StaleCallback(InvalidCallback):
    """The callback's timestamp is further from now than the tolerance."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def envelope_code(response: httpx.Response) -> str | None:
    """The envelope's `error.code`, or None when the body is not an envelope."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def error_from(response: httpx.Response) -> ApiError:
    """The typed error for an error answer, from its envelope when it has one."""
    status = response.status_code
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    try:
        error = response.json()["error"]
        return kind(status, str(error["code"]), str(error["message"]), list(error["details"]))
    except (ValueError, KeyError, TypeError):
        # Not the API's envelope (a proxy or load balancer answered): keep what it said.
        text = response.text[:200].strip() or response.reason_phrase
        return kind(status, f"http_{status}", text)
