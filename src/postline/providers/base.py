"""What a provider adapter is, and the HTTP-to-error mapping they share."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp

from postline.domain.message import Message
from postline.errors import PermanentProviderError, TransientProviderError

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
# A year: far beyond any retry cap, far below anything float() cannot hold.
_MAX_DELTA_SECONDS = 366 * 24 * 3600
_MAX_DELTA_DIGITS = 9


@dataclass(frozen=True, slots=True)
class SendResult:
    provider: str
    provider_message_id: str | None


class Provider(Protocol):
    """Sends one message or raises a ProviderError."""

    name: str

    async def send(self, message: Message) -> SendResult: ...


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    Never raises: the header comes from outside, and a garbled one must not
    turn a retryable failure into a crash. Anything that is neither form
    (`inf`, `nan`, `-5`, `1e9`, junk) is no Retry-After at all; the result
    is None or a finite number >= 0 (the retry schedule caps it).
    """
    if not value:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        # Fractions are not RFC 9110 but harmless; huge values are clamped
        # before float() could overflow.
        if len(text.partition(".")[0]) > _MAX_DELTA_DIGITS:
            return float(_MAX_DELTA_SECONDS)
        return min(float(text), float(_MAX_DELTA_SECONDS))
    try:
        moment = parsedate_to_datetime(text)
        return max(0.0, min(moment.timestamp() - time.time(), float(_MAX_DELTA_SECONDS)))
    except (TypeError, ValueError, OverflowError, IndexError):
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


@dataclass(frozen=True, slots=True)
class Route:
    """One way to send a channel: a named provider account (`domain/routes.py`).

    `account` names the account's pacing bucket (README, "Pacing"): what a
    send through this route is paced against, and what its 429 holds.
    """

    name: str
    provider: Provider
    account: str
