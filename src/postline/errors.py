"""Postline's exceptions. The provider branch decides retry versus fail.

PostlineError
 ├── ProviderError                 a send did not go through
 │    ├── TransientProviderError   network error, timeout, 5xx, 429: retry later
 │    │                            (honouring `retry_after` when the provider gave one)
 │    └── PermanentProviderError   4xx other than 429: fail now, keep the provider's code
 ├── DatabaseUnavailable           PostgreSQL cannot be reached: nothing was stored
 ├── ContentRefused                PostgreSQL refused a validated message's values
 └── ConfigurationError            the settings cannot work (refuse to start)
"""

from __future__ import annotations


class PostlineError(Exception):
    """Base of every error Postline raises on purpose."""


class DatabaseUnavailable(PostlineError):
    """PostgreSQL cannot be reached now; nothing was stored (the API answers 503)."""


class ContentRefused(PostlineError):
    """PostgreSQL refused a message's values (the API answers 422); the
    argument is the SQLSTATE."""

    @property
    def sqlstate(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(PostlineError):
    """The settings cannot work; the process refuses to start."""


class ProviderError(PostlineError):
    """A provider did not accept a message."""

    def __init__(self, *, provider: str, code: str, message: str, status: int | None = None):
        super().__init__(f"{provider}: {code}: {message}")
        self.provider = provider
        self.code = code
        self.message = message
        self.status = status


class TransientProviderError(ProviderError):
    """Worth trying again after a backoff."""

    def __init__(
        self,
        *,
        provider: str,
        code: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(provider=provider, code=code, message=message, status=status)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Trying again would fail the same way."""
