"""A typed client of Postline's HTTP API, blocking (`Client`) or asyncio (`AsyncClient`).

    from postline.client import Client, NotFound

    with Client("http://127.0.0.1:8080", api_key="...") as postline:
        message = postline.send({"from": "+15551234567", "to": "+15559876543",
                                 "type": "sms", "body": "Paid"})
        print(postline.get(message.id).status)

Calls that fail for a moment (503, 429, a dropped connection) are tried
again; a send keeps one Idempotency-Key across its tries, so it never sends
twice. Errors are typed (`postline.client.errors`). `verify_callback` checks
the signed callbacks Postline POSTs to a message's `callback_url`.

The package imports nothing else of Postline (an import-linter contract
keeps it so): it needs only httpx.
"""

from postline.client.aio import AsyncClient
from postline.client.callbacks import verify_callback
from postline.client.errors import (
    ApiError,
    BadRequest,
    BadSignature,
    ClientError,
    Conflict,
    Forbidden,
    InvalidCallback,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    StaleCallback,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    Unreachable,
    ValidationError,
)
from postline.client.models import BatchItem, Event, Message, Problem
from postline.client.retrying import RetryPolicy
from postline.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BadSignature",
    "BatchItem",
    "Client",
    "ClientError",
    "Conflict",
    "Event",
    "Forbidden",
    "InvalidCallback",
    "Message",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "StaleCallback",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "Unreachable",
    "ValidationError",
    "verify_callback",
]
