"""Runtime knobs of the provider simulator.

`SimulatorConfig` is deliberately mutable: the running server reads it on
every request, so a test (or `PUT /_sim/config`) can turn faults on and off
without restarting anything. Changes go through `apply_config_patch`, which
validates the whole patch before touching the live object so a bad request
never leaves the simulator half-reconfigured.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: What a delivery receipt reports: Twilio's final statuses. SendGrid reports
#: `delivered`, a `bounce` for "undelivered" and a drop for "failed".
RECEIPT_OUTCOMES = ("delivered", "undelivered", "failed")

#: The credentials a launcher (`postline dev`, the benchmarks, the fault
#: campaign) gives both the simulator and the provider clients it points at it.
SIM_ACCOUNT_SID = "AC" + "0" * 32
SIM_AUTH_TOKEN = "simulator-auth-token"  # noqa: S105 - the simulator's own fake credential
SIM_SENDGRID_KEY = "SG.simulator-key"


class ConfigError(ValueError):
    """A knob was given an unknown name or a value it cannot take."""


@dataclass
class SimulatorConfig:
    """How the simulated providers behave; see the field comments for units."""

    # Added to every provider answer, in milliseconds; jitter is +/- around it.
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    # Fractions of provider requests answered 500 / 429 (one draw decides both).
    error_rate: float = 0.0
    rate_429: float = 0.0
    retry_after_seconds: int = 1
    # When set, Twilio basic auth must match (username = AccountSid).
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    # When set, the SendGrid `Authorization: Bearer` key must match.
    sendgrid_api_key: str | None = None
    # Size of the inspection ring buffer (oldest requests fall off).
    keep_requests: int = 100_000
    # Seeds the random source of faults, jitter and ids, for replayable runs.
    seed: int | None = None
    # Delivery-status callbacks after each accepted send: Twilio's to the
    # request's StatusCallback, SendGrid's events to the URL below.
    callbacks_enabled: bool = True
    callback_delay_ms: float = 200.0
    # One of RECEIPT_OUTCOMES; a script item's "receipt" overrides it per message.
    delivery_outcome: str = "delivered"
    # Twilio ErrorCode of an undelivered/failed receipt; None means 30003 / 30008.
    delivery_error_code: int | None = None
    sendgrid_event_webhook_url: str | None = None
    # Where `POST /_sim/inbound` sends Twilio's inbound message webhook.
    twilio_inbound_webhook_url: str | None = None
    # PEM EC P-256 key that signs SendGrid events; None: one is generated at start.
    sendgrid_webhook_private_key: str | None = None
    # Ambiguous-outcome faults, for fault campaigns (see `faults.py`):
    # a fraction of requests held `hang_ms` before being handled (a client
    # that gives up meanwhile gets nothing and nothing is sent); a fraction
    # accepted and then dropped without an answer; a fraction accepted and
    # then answered 500. The last two share one draw, like the error rates.
    hang_rate: float = 0.0
    hang_ms: float = 0.0
    reset_rate: float = 0.0
    accepted_error_rate: float = 0.0

    def __post_init__(self) -> None:
        _validate(self)
        # JSON gives `1` as often as `1.0`; store floats so readers see one type.
        for name in _FLOATS:
            setattr(self, name, float(getattr(self, name)))


_NON_NEGATIVE_FLOATS = ("latency_ms", "latency_jitter_ms", "callback_delay_ms", "hang_ms")
_FRACTIONS = ("error_rate", "rate_429", "hang_rate", "reset_rate", "accepted_error_rate")
_OPTIONAL_STRINGS = ("twilio_account_sid", "twilio_auth_token", "sendgrid_api_key")
_FLOATS = (*_NON_NEGATIVE_FLOATS, *_FRACTIONS)
FIELD_NAMES = frozenset(field.name for field in dataclasses.fields(SimulatorConfig))


def _is_number(value: object) -> bool:
    # bool is an int subclass; `"error_rate": true` is a mistake, not 1.0.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(config: SimulatorConfig) -> None:
    for name in _NON_NEGATIVE_FLOATS:
        value = getattr(config, name)
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    for name in _FRACTIONS:
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
    if not _is_int(config.retry_after_seconds) or config.retry_after_seconds < 0:
        raise ConfigError(
            f"retry_after_seconds must be an integer >= 0, got {config.retry_after_seconds!r}"
        )
    if not _is_int(config.keep_requests) or config.keep_requests < 1:
        raise ConfigError(f"keep_requests must be an integer >= 1, got {config.keep_requests!r}")
    if config.seed is not None and not _is_int(config.seed):
        raise ConfigError(f"seed must be an integer or null, got {config.seed!r}")
    for name in _OPTIONAL_STRINGS:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{name} must be a non-empty string or null, got {value!r}")
    _validate_receipts(config)


def _validate_receipts(config: SimulatorConfig) -> None:
    if not isinstance(config.callbacks_enabled, bool):
        raise ConfigError(
            f"callbacks_enabled must be true or false, got {config.callbacks_enabled!r}"
        )
    if config.delivery_outcome not in RECEIPT_OUTCOMES:
        raise ConfigError(
            f"delivery_outcome must be one of {', '.join(RECEIPT_OUTCOMES)}, "
            f"got {config.delivery_outcome!r}"
        )
    code = config.delivery_error_code
    if code is not None and (not _is_int(code) or code <= 0):
        raise ConfigError(f"delivery_error_code must be a positive integer or null, got {code!r}")
    url = config.sendgrid_event_webhook_url
    if url is not None and not _is_http_url(url):
        raise ConfigError(f"sendgrid_event_webhook_url must be an http(s) URL or null, got {url!r}")
    url = config.twilio_inbound_webhook_url
    if url is not None and not _is_http_url(url):
        raise ConfigError(f"twilio_inbound_webhook_url must be an http(s) URL or null, got {url!r}")
    if config.sendgrid_webhook_private_key is not None:
        load_private_key(config.sendgrid_webhook_private_key)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def load_private_key(pem: object) -> ec.EllipticCurvePrivateKey:
    """The SendGrid signing key from PEM; ConfigError unless it is an EC P-256 private key."""
    if not isinstance(pem, str):
        raise ConfigError("sendgrid_webhook_private_key must be a PEM string or null")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"sendgrid_webhook_private_key is not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("sendgrid_webhook_private_key must be an EC P-256 (prime256v1) key")
    return key


def config_to_dict(config: SimulatorConfig) -> dict[str, Any]:
    """The knobs as a JSON-ready dict (what `GET /_sim/config` answers)."""
    return dataclasses.asdict(config)


def apply_config_patch(config: SimulatorConfig, patch: object) -> list[str]:
    """Validate `patch` (a partial JSON object) and apply it to `config` in place.

    Returns the names of the fields that were set. Raises `ConfigError` and
    leaves `config` untouched when any key is unknown or any value invalid.
    """
    if not isinstance(patch, dict):
        raise ConfigError("the body must be a JSON object")
    unknown = sorted(str(key) for key in patch if key not in FIELD_NAMES)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    # replace() re-runs __post_init__, so the candidate is validated as a whole.
    candidate = dataclasses.replace(config, **patch)
    for name in patch:
        setattr(config, name, getattr(candidate, name))
    return list(patch)
