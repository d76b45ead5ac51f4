"""Runtime configuration, read from the environment and `.env` (SPEC 5).

Settings are built in `main()` or an app factory, never at import time, so a
test can hand its own `Settings` to any component. This module is a leaf: it
imports no other Postline module (an import-linter contract holds it), so
every room may read settings.
"""

from __future__ import annotations

import base64
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Room a lease needs beyond the provider deadline: renewals every 2 s and
#: the margin a send keeps before its lease ends.
LEASE_HEADROOM_SECONDS = 5.0

#: Standard Webhooks secrets are `whsec_` followed by the base64 key.
WHSEC_PREFIX = "whsec_"

#: The sender classes `PACING_SENDERS` may name (`domain.pacing.SenderClass`).
SENDER_CLASSES = ("long_code", "toll_free", "short_code", "whatsapp", "email")

#: The longest retention the housekeeping settings take: a century.
MAX_RETENTION_DAYS = 36_500

DEFAULT_TWILIO_BASE_URL = "https://api.twilio.com"
DEFAULT_SENDGRID_BASE_URL = "https://api.sendgrid.com"


class Settings(BaseSettings):
    """Every knob of Postline; names match the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str | None = None
    redis_url: str | None = None
    sync_message_processing: bool = False
    api_keys: str | None = None

    max_attempts: int = Field(default=3, ge=1, le=100)
    # Finite, so a computed delay is always a time that can be stored.
    retry_base_seconds: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    retry_max_seconds: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    visibility_timeout_seconds: float = Field(default=30.0, gt=0)
    reconcile_interval_seconds: float = Field(default=10.0, gt=0)
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    worker_concurrency: int = Field(default=256, ge=1, le=10_000)

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_base_url: str = DEFAULT_TWILIO_BASE_URL
    # The backup route of SMS, MMS and WhatsApp: a second Twilio account
    # (README, "Provider failover"); its base URL defaults to TWILIO_BASE_URL.
    twilio_backup_account_sid: str | None = None
    twilio_backup_auth_token: str | None = None
    twilio_backup_base_url: str | None = None
    # Route health (domain/routes.py): the error share over a window that
    # opens a route's circuit, the least attempts it takes, the cool-down
    # before half-open probes, and the ramp back once it closes.
    route_window_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    route_error_threshold: float = Field(default=0.5, gt=0, le=1)
    route_min_requests: int = Field(default=20, ge=1)
    route_open_seconds: float = Field(default=15.0, gt=0, allow_inf_nan=False)
    route_probes: int = Field(default=3, ge=1, le=100)
    route_ramp_seconds: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    sendgrid_api_key: str | None = None
    sendgrid_base_url: str = DEFAULT_SENDGRID_BASE_URL
    sendgrid_webhook_public_key: str | None = None
    public_base_url: str | None = None
    callback_signing_secret: str | None = None
    callback_retry_base_seconds: float = Field(default=5.0, gt=0)
    # Lets callbacks go to loopback, private, link-local and metadata addresses
    # (refused by default, at accept and at connect time): for `postline dev`
    # and tests, whose receivers live on loopback.
    callback_allow_private_networks: bool = False
    # Inbound messages: the TwiML reply to HELP / INFO (unset or empty: no
    # reply), and where their `message.received` callbacks go (unset: none).
    inbound_help_reply: str | None = Field(default=None, max_length=1600)
    inbound_callback_url: str | None = None

    # Housekeeping (README, "Housekeeping"): days inbound messages and settled
    # messages are kept (0: forever); settled messages are kept by default.
    inbound_retention_days: int = Field(default=30, ge=0, le=MAX_RETENTION_DAYS)
    message_retention_days: int = Field(default=0, ge=0, le=MAX_RETENTION_DAYS)

    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    # When set, the API also writes <log_dir>/app.log and workers <log_dir>/worker.log.
    log_dir: str | None = None

    db_pool_size: int = Field(default=10, ge=1, le=200)

    # Pacing (README, "Pacing"): messages per second per sender class (0: no
    # limit), per-sender overrides (JSON: a rate or a class name), the cap on
    # sends in flight per provider account (0: none), and how long a 429
    # without Retry-After holds its account.
    pacing_enabled: bool = False
    pacing_long_code_rate: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    pacing_toll_free_rate: float = Field(default=3.0, ge=0, allow_inf_nan=False)
    pacing_short_code_rate: float = Field(default=100.0, ge=0, allow_inf_nan=False)
    pacing_whatsapp_rate: float = Field(default=80.0, ge=0, allow_inf_nan=False)
    pacing_email_rate: float = Field(default=100.0, ge=0, allow_inf_nan=False)
    pacing_senders: dict[str, float | str] = Field(default_factory=dict)
    pacing_account_concurrency: int = Field(default=100, ge=0, le=100_000)
    pacing_throttle_seconds: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    @field_validator("twilio_base_url", "sendgrid_base_url", "twilio_backup_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @field_validator("callback_signing_secret")
    @classmethod
    def _whsec(cls, value: str | None) -> str | None:
        if value:
            whsec_key(value)  # refuse to start with a secret no receiver could use
        return value or None

    @field_validator("pacing_senders")
    @classmethod
    def _pacing_senders(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        for sender, limit in value.items():
            if isinstance(limit, str) and limit not in SENDER_CLASSES:
                raise ValueError(
                    f"PACING_SENDERS[{sender!r}]: {limit!r} is neither a rate nor one of "
                    + ", ".join(SENDER_CLASSES)
                )
            if isinstance(limit, float | int) and not 0 <= limit < float("inf"):
                raise ValueError(f"PACING_SENDERS[{sender!r}]: a rate must be 0 or more")
        return value

    @field_validator("inbound_help_reply")
    @classmethod
    def _reply(cls, value: str | None) -> str | None:
        if value and "\x00" in value:
            raise ValueError("INBOUND_HELP_REPLY must not contain NUL")
        return (value or "").strip() or None

    @field_validator("inbound_callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise ValueError("INBOUND_CALLBACK_URL is not a URL") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("INBOUND_CALLBACK_URL must be an http(s) URL with a host")
        return value

    @model_validator(mode="after")
    def _inbound_callbacks_are_signed(self) -> Settings:
        # Every client callback is signed; an unsigned one could not be trusted.
        if self.inbound_callback_url and not self.callback_signing_secret:
            raise ValueError("INBOUND_CALLBACK_URL needs CALLBACK_SIGNING_SECRET")
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Settings:
        # A claim's lease is VISIBILITY_TIMEOUT_SECONDS long; a send may take
        # PROVIDER_TIMEOUT_SECONDS. A lease shorter than a send (plus room
        # for renewal) would let a live send be taken over and sent twice.
        least = self.provider_timeout_seconds + LEASE_HEADROOM_SECONDS
        if self.visibility_timeout_seconds < least:
            raise ValueError(
                f"VISIBILITY_TIMEOUT_SECONDS ({self.visibility_timeout_seconds:g}) must be at "
                f"least PROVIDER_TIMEOUT_SECONDS ({self.provider_timeout_seconds:g}) + "
                f"{LEASE_HEADROOM_SECONDS:g}: a send still in progress could be taken over"
            )
        return self

    @model_validator(mode="after")
    def _backup_whole(self) -> Settings:
        # Half a backup account would fail every send failed over to it.
        if bool(self.twilio_backup_account_sid) != bool(self.twilio_backup_auth_token):
            raise ValueError("TWILIO_BACKUP_ACCOUNT_SID and TWILIO_BACKUP_AUTH_TOKEN go together")
        return self

    @property
    def twilio_backup(self) -> bool:
        """True when the backup Twilio account is configured."""
        return bool(self.twilio_backup_account_sid and self.twilio_backup_auth_token)

    def twilio_tokens(self) -> dict[str, str]:
        """Each configured Twilio account's auth token, by AccountSid."""
        tokens = {}
        if self.twilio_account_sid and self.twilio_auth_token:
            tokens[self.twilio_account_sid] = self.twilio_auth_token
        if self.twilio_backup_account_sid and self.twilio_backup_auth_token:
            tokens[self.twilio_backup_account_sid] = self.twilio_backup_auth_token
        return tokens

    @property
    def api_key_list(self) -> list[str]:
        return split_api_keys(self.api_keys)

    @property
    def providers_configured(self) -> bool:
        """True when real credentials for both providers are present."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.sendgrid_api_key)


def split_api_keys(api_keys: str | None) -> list[str]:
    """The keys of an API_KEYS value: comma-separated, blanks around them ignored."""
    return [key.strip() for key in (api_keys or "").split(",") if key.strip()]


class BadSecret(ValueError):
    """The secret is not `whsec_` followed by base64 of at least 16 bytes."""


def whsec_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_<base64>`)."""
    if not secret.startswith(WHSEC_PREFIX):
        raise BadSecret("CALLBACK_SIGNING_SECRET must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
    except ValueError as exc:
        raise BadSecret("CALLBACK_SIGNING_SECRET must be whsec_ followed by base64") from exc
    if len(key) < 16:
        raise BadSecret("CALLBACK_SIGNING_SECRET must hold at least 16 bytes")
    return key
