"""The operator commands' parts: where the API is, and a message shown as the API shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from postline.cli.config import DEFAULT_API_URL, api_target
from postline.cli.devenv import write_dev_env
from postline.cli.operator import message_json
from postline.client import Message

API_JSON: dict[str, Any] = {
    "id": "0b6c1c3e-8d3e-4f57-a7e5-2f0f3c1f9a10", "status": "failed", "type": "sms",
    "from": "+15551234567", "to": "+15550000001", "body": "Hi", "subject": None, "html": None,
    "attachments": [], "ordering_key": "+15550000001", "send_at": None, "metadata": {"a": 1},
    "callback_url": None, "list_unsubscribe": False, "attempts": 1,
    "error": {"code": "21211", "message": "Invalid To", "details": []},
    "provider": "twilio", "provider_message_id": None, "next_attempt_at": None,
    "created_at": "2026-11-30T15:00:00.123456+00:00",
    "updated_at": "2026-11-30T15:00:01+00:00", "sent_at": None, "delivered_at": None,
}  # fmt: skip


def test_a_message_is_shown_as_the_api_shows_it() -> None:
    assert message_json(Message.from_json(API_JSON)) == API_JSON


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def test_the_api_is_the_flag_else_what_dev_wrote_else_8080(no_keys: None, tmp_path: Path) -> None:
    assert api_target(data_dir=tmp_path / "none", url=None) == (DEFAULT_API_URL, None)
    write_dev_env(tmp_path, {"DEV_API_URL": "http://127.0.0.1:8181", "API_KEYS": "dev-key,k2"})
    assert api_target(data_dir=tmp_path, url=None) == ("http://127.0.0.1:8181", "dev-key")
    assert api_target(data_dir=tmp_path, url="http://h:1") == ("http://h:1", "dev-key")


def test_api_keys_in_the_environment_win_over_dev_env(
    no_keys: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dev_env(tmp_path, {"API_KEYS": "dev-key"})
    monkeypatch.setenv("API_KEYS", "mine")
    assert api_target(data_dir=tmp_path, url=None)[1] == "mine"
