"""SimulatorConfig validation and runtime patches."""

from __future__ import annotations

import pytest

from postline.simulator.config import (
    ConfigError,
    SimulatorConfig,
    apply_config_patch,
    config_to_dict,
)


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
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_ms": -1},
        {"latency_jitter_ms": float("nan")},
        {"error_rate": 1.01},
        {"rate_429": -0.1},
        {"error_rate": True},
        {"retry_after_seconds": 1.5},
        {"retry_after_seconds": -1},
        {"keep_requests": 0},
        {"seed": "7"},
        {"twilio_auth_token": ""},
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
