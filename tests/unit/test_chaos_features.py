"""A campaign's features: parsed from the command line, turned into the children's settings."""

from __future__ import annotations

import pytest

from postline.chaos.campaign import DRAIN_SECONDS, default_drain
from postline.chaos.features import (
    ACCOUNT_CONCURRENCY,
    ROUTE_SETTINGS,
    Features,
    child_settings,
    paced_load,
)
from postline.chaos.load import PACED_SENDER, SENDER, LoadSpec, payload
from postline.settings import Settings
from postline.simulator.config import SIM_BACKUP_ACCOUNT_SID


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (None, ()),
        ("", ()),
        ("none", ()),
        ("failover", ("failover",)),
        (" pacing , failover ", ("failover", "pacing")),
    ],
)
def test_features_are_parsed_from_a_comma_separated_list(
    text: str | None, names: tuple[str, ...]
) -> None:
    assert Features.parse(text).names == names


def test_an_unknown_feature_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown features: sharding; known: failover, pacing"):
        Features.parse("pacing,sharding")


def test_no_feature_adds_no_setting() -> None:
    assert child_settings(Features(), rate=150, keys=100) == {}


def test_the_paced_sender_gets_a_tenth_of_the_keys_and_five_times_what_they_offer() -> None:
    paced = paced_load(rate=150, keys=100)

    assert (paced.sender, paced.keys, paced.offered, paced.rate) == (PACED_SENDER, 10, 15.0, 75.0)
    assert paced_load(rate=10, keys=3).keys == 1  # always one paced key at least


def test_the_settings_read_by_the_service_are_the_ones_the_features_mean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = child_settings(Features(failover=True, pacing=True), rate=150, keys=100)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.twilio_backup
    assert settings.twilio_backup_account_sid == SIM_BACKUP_ACCOUNT_SID
    assert {name: env[name] for name in ROUTE_SETTINGS} == ROUTE_SETTINGS
    assert settings.route_open_seconds == 5.0
    assert settings.pacing_enabled
    # The other sender has no limit: as a long code it would get 1/s by default.
    assert settings.pacing_senders == {SENDER: 0, PACED_SENDER: 75.0}
    assert settings.pacing_account_concurrency == ACCOUNT_CONCURRENCY


def test_only_the_paced_keys_send_from_the_paced_sender() -> None:
    spec = LoadSpec("http://api", 150, 100, 60, 1, "tok", paced_keys=10)

    assert payload(spec, 9, 1)["from"] == PACED_SENDER
    assert payload(spec, 10, 1)["from"] == SENDER
    assert payload(LoadSpec("http://api", 150, 100, 60, 1, "tok"), 0, 1)["from"] == SENDER


def test_pacing_lengthens_the_drain_and_nothing_else_does() -> None:
    assert default_drain(Features()) == default_drain(Features(failover=True)) == DRAIN_SECONDS
    assert default_drain(Features(pacing=True)) == DRAIN_SECONDS + 30
