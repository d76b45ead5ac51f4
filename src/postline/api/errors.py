"""The one error envelope: `{"error": {"code", "message", "details"}}` (SPEC 3)."""

from __future__ import annotations

import logging
import traceback
from typing import Any, TypeVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from postline.errors import ContentRefused, DatabaseUnavailable
from postline.store.availability import DB_UNAVAILABLE

log = logging.getLogger("postline.api")

ModelT = TypeVar("ModelT", bound=BaseModel)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raised by routes; rendered in the envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details or []


def envelope(status: int, code: str, message: str, details: list[Any] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def render(error: ApiError) -> Response:
    return envelope(error.status, error.code, error.message, error.details)


def invalid(details: list[dict[str, Any]], message: str | None = None) -> ApiError:
    """The one 422: `details` as pydantic shapes them, the message their summary
    unless given."""
    return ApiError(422, message or summary(details), details=details)


def validated(model: type[ModelT], document: Any) -> ModelT:
    """`document` as `model`, or a 422 naming each rule it breaks."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise invalid(validation_details(exc)) from exc


def item_error(error: ApiError) -> dict[str, Any]:
    """A refused batch item's `error`: what the same body sent alone would answer."""
    return {"code": error.code, "message": error.message, "details": error.details}


def validation_details(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors, trimmed to what a client can act on (no echo of input)."""
    details = []
    for err in exc.errors():
        loc = [part for part in err.get("loc", ()) if part != "body"]
        ctx = err.get("ctx") or {}
        if err.get("type") == "send_rule" and "field" in ctx:
            loc = [str(ctx["field"])]
            msg = str(ctx.get("message", err.get("msg", "")))
        else:
            msg = str(err.get("msg", ""))
        details.append({"loc": loc, "msg": msg, "type": err.get("type", "invalid")})
    return details


def field_error(loc: list[str], message: str) -> ApiError:
    """A 422 about one field (`loc` as pydantic writes it), in the envelope."""
    return invalid([{"loc": loc, "msg": message, "type": "value_error"}])


def summary(details: list[dict[str, Any]]) -> str:
    if not details:
        return "the request is not valid"
    first = details[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def http_error(exc: StarletteHTTPException) -> Response:
    """Starlette's own answers (no route, wrong method) in the envelope."""
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":  # no route matched the path
        message = "nothing at this path (a message id is a UUID)"
    response = envelope(exc.status_code, code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return render(exc)

    @app.exception_handler(DatabaseUnavailable)
    async def _database_unavailable(_: Request, exc: DatabaseUnavailable) -> Response:
        return envelope(503, "database_unavailable", "the database is unavailable")

    @app.exception_handler(ContentRefused)
    async def _content_refused(_: Request, exc: ContentRefused) -> Response:
        message = "the database refused this message's content"
        detail = {
            "loc": ["body"],
            "msg": f"{message} (SQLSTATE {exc.sqlstate})",
            "type": "database_refused",
        }
        return render(invalid([detail], message))

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> Response:
        return render(invalid(validation_details(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return http_error(exc)

    async def _unavailable(_: Request, exc: Exception) -> Response:
        # Once for every route: a read, a list, a cancel or a retry that
        # cannot reach PostgreSQL is a 503 like a send, never a 500.
        if from_database(exc):
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            return envelope(503, "database_unavailable", "the database is unavailable")
        log.warning("a dependency is unavailable", exc_info=exc)
        return envelope(503, "service_unavailable", "a server Postline needs is unavailable")

    for kind in DB_UNAVAILABLE:
        if issubclass(kind, Exception):
            app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return envelope(500, "internal_error", "an unexpected error occurred")


def from_database(exc: BaseException) -> bool:
    """True if `exc` is asyncpg's, or a socket error raised inside asyncpg.

    A connection PostgreSQL refuses surfaces as a bare OSError from the
    driver; one from anywhere else must not be reported as the database.
    """
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return True
    return any(
        frame.f_globals.get("__name__", "").startswith("asyncpg.")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )
