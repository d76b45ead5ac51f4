"""Reading request bodies with a size limit, before anything parses them."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from postline.api.errors import ApiError

# What a send or a batch may weigh (SPEC 3: a request over 2 MB gets 413).
MAX_REQUEST_BYTES = 2 * 1024 * 1024


async def read_limited(request: Request, *, limit: int, what: str = "a request") -> bytes:
    """The raw body; 413 as soon as it is known to exceed `limit` bytes.

    The declared Content-Length is checked first, and the stream is counted
    too, since a client may send more than it declared (or no length at all).
    """
    too_big = ApiError(413, f"{what} may be at most {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
    except ClientDisconnect:
        # The client went away mid-body (it gave up, or it is shutting down):
        # nobody is left to answer, and it is not this server's error.
        raise ApiError(
            400, f"{what} ended before its body did", code="client_disconnected"
        ) from None
    return bytes(body)
