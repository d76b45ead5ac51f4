"""What a provider adapter is, and the HTTP-to-error mapping they share."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from postline.errors import PermanentProviderError, TransientProviderError


@dataclass(frozen=True, slots=True)
class SendResult:
    provider: str
    provider_message_id: str | None


class Provider(Protocol):
    """Sends one message (a row as stored) or raises a ProviderError."""

    name: str

    async def send(self, message: Mapping[str, Any]) -> SendResult: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def raise_for_answer(
    provider: str, status: int, headers: Mapping[str, str], code: str, message: str
) -> None:
    """Maps a non-2xx answer to a transient or permanent error."""
    if status == 429 or status >= 500 or status == 408:
        raise TransientProviderError(
            provider=provider,
            code=code,
            message=message,
            status=status,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
        )
    raise PermanentProviderError(provider=provider, code=code, message=message, status=status)


def transport_error(provider: str, exc: BaseException) -> TransientProviderError:
    """A request that got no answer: connection refused, reset, timeout."""
    if isinstance(exc, asyncio.TimeoutError):
        return TransientProviderError(
            provider=provider, code="timeout", message="no answer in time"
        )
    name = type(exc).__name__
    return TransientProviderError(provider=provider, code="network_error", message=f"{name}: {exc}")


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
