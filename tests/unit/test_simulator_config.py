"""SimulatorConfig validation and runtime patches."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from postline.simulator.config import (
    ConfigError,
    SimulatorConfig,
    apply_config_patch,
    config_to_dict,
)


def _pem(curve: ec.EllipticCurve) -> str:
    return (
        ec.generate_private_key(curve)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _p384_pem() -> str:
    return _pem(ec.SECP384R1())


def test_defaults_are_quiet_and_unauthenticated() -> None:
    config = SimulatorConfig()

    assert config_to_dict(config) == {
        "latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "error_rate": 0.0,
        "rate_429": 0.0,
        "retry_after_seconds": 1,
        "twilio_account_sid": None,
        "twilio_auth_token": None,
        "sendgrid_api_key": None,
        "keep_requests": 100_000,
        "seed": None,
        "callbacks_enabled": True,
        "callback_delay_ms": 200.0,
        "delivery_outcome": "delivered",
        "delivery_error_code": None,
        "sendgrid_event_webhook_url": None,
        "twilio_inbound_webhook_url": None,
        "sendgrid_webhook_private_key": None,
        "hang_rate": 0.0,
        "hang_ms": 0.0,
        "reset_rate": 0.0,
        "accepted_error_rate": 0.0,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_ms": -1},
        {"latency_jitter_ms": float("nan")},
        {"error_rate": 1.01},
        {"rate_429": -0.1},
        {"error_rate": True},
        {"hang_rate": 1.5},
        {"hang_ms": -1},
        {"reset_rate": -0.1},
        {"accepted_error_rate": 2},
        {"retry_after_seconds": 1.5},
        {"retry_after_seconds": -1},
        {"keep_requests": 0},
        {"seed": "7"},
        {"twilio_auth_token": ""},
        {"callbacks_enabled": 1},
        {"callback_delay_ms": -5},
        {"delivery_outcome": "read"},
        {"delivery_error_code": 0},
        {"delivery_error_code": "30003"},
        {"sendgrid_event_webhook_url": "ftp://example.com/events"},
        {"sendgrid_event_webhook_url": "/relative"},
        {"sendgrid_webhook_private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"},
        {"sendgrid_webhook_private_key": _p384_pem()},
    ],
)
def test_bad_values_are_refused_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_integers_are_stored_as_floats_for_float_knobs() -> None:
    config = SimulatorConfig(latency_ms=200, error_rate=1)

    assert isinstance(config.latency_ms, float)
    assert isinstance(config.error_rate, float)


def test_patch_updates_the_live_object_in_place() -> None:
    config = SimulatorConfig()

    changed = apply_config_patch(config, {"rate_429": 1, "sendgrid_api_key": "SG.k"})

    assert sorted(changed) == ["rate_429", "sendgrid_api_key"]
    assert config.rate_429 == 1.0
    assert isinstance(config.rate_429, float)
    assert config.sendgrid_api_key == "SG.k"


@pytest.mark.parametrize(
    "patch",
    [
        {"latency_ms": 10, "nope": 1},
        {"latency_ms": 10, "error_rate": 2},
        ["latency_ms"],
    ],
)
def test_a_bad_patch_changes_nothing(patch: object) -> None:
    config = SimulatorConfig()

    with pytest.raises(ConfigError):
        apply_config_patch(config, patch)

    assert config == SimulatorConfig()


def test_receipt_knobs_accept_their_values() -> None:
    config = SimulatorConfig(
        callbacks_enabled=False,
        callback_delay_ms=0,
        delivery_outcome="failed",
        delivery_error_code=30005,
        sendgrid_event_webhook_url="http://127.0.0.1:8080/api/v1/webhooks/sendgrid/events",
        sendgrid_webhook_private_key=_pem(ec.SECP256R1()),
    )

    assert config.callback_delay_ms == 0.0 and isinstance(config.callback_delay_ms, float)
    apply_config_patch(config, {"delivery_outcome": "undelivered", "callbacks_enabled": True})
    assert (config.delivery_outcome, config.callbacks_enabled) == ("undelivered", True)
