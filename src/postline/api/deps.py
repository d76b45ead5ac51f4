"""What every route gets: the process's components, and the auth check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from postline.api.errors import ApiError
from postline.metrics import ApiMetrics
from postline.queue.streams import RedisQueue
from postline.services.accepting import Acceptor, InlineSender
from postline.services.receipts import ReceiptIntake
from postline.settings import Settings
from postline.store.messages import MessageStore


@dataclass
class Components:
    """Built once in the app's lifespan; one per API process."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    queue: RedisQueue
    store: MessageStore
    acceptor: Acceptor
    receipts: ReceiptIntake
    metrics: ApiMetrics
    inline: InlineSender | None = None


async def components(request: Request) -> Components:
    value: Components = request.app.state.components
    return value


ComponentsDep = Annotated[Components, Depends(components)]


# Declares the scheme in the OpenAPI document (and on each route that uses
# AuthDep); the check itself is `check_api_key`, which the send and batch
# routes call directly and declare by hand (`BEARER_SECURITY`).
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="`Authorization: Bearer <key>` with one of the server's API_KEYS. A server "
    "without API_KEYS (loopback only) asks for none.",
)
BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


async def require_api_key(
    request: Request,
    parts: ComponentsDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """Bearer auth when API_KEYS is set; keys compared in constant time."""
    check_api_key(request, parts)


def check_api_key(request: Request, parts: Components) -> None:
    keys = parts.settings.api_key_list
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    presented = token.strip().encode()
    ok = scheme.lower() == "bearer" and any(
        hmac.compare_digest(presented, key.encode()) for key in keys
    )
    if not ok:
        raise ApiError(401, "a valid 'Authorization: Bearer <key>' header is required")


AuthDep = Annotated[None, Depends(require_api_key)]
