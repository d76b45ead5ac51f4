"""INBOUND_CALLBACK_URL and INBOUND_HELP_REPLY: refused at start when they cannot work."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from postline.api.callback_urls import RefusedInboundCallback, check_inbound_callback_url
from postline.api.routes.inbound import twiml
from postline.callbacks import targets
from postline.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_inbound_callbacks_need_the_signing_secret_and_an_http_url() -> None:
    with pytest.raises(ValidationError, match="needs CALLBACK_SIGNING_SECRET"):
        settings(inbound_callback_url="https://hooks.example.com/in")
    with pytest.raises(ValidationError, match="http"):
        settings(inbound_callback_url="ftp://hooks.example.com/in", callback_signing_secret=SECRET)
    assert (
        settings(inbound_callback_url="", callback_signing_secret=SECRET).inbound_callback_url
        is None
    )


def test_an_empty_help_reply_is_no_reply() -> None:
    assert settings(inbound_help_reply="  ").inbound_help_reply is None
    assert settings(inbound_help_reply=" Call us ").inbound_help_reply == "Call us"
    with pytest.raises(ValidationError):
        settings(inbound_help_reply="a\x00b")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hook", "http://10.0.0.7/hook", "http://169.254.169.254/", "http://127.1/"],
)
async def test_an_inbound_callback_url_on_a_private_network_stops_the_start(url: str) -> None:
    refused = settings(inbound_callback_url=url, callback_signing_secret=SECRET)
    with pytest.raises(RefusedInboundCallback, match="INBOUND_CALLBACK_URL is refused"):
        await check_inbound_callback_url(refused)
    allowed = settings(
        inbound_callback_url=url,
        callback_signing_secret=SECRET,
        callback_allow_private_networks=True,
    )
    await check_inbound_callback_url(allowed)


async def test_a_host_that_does_not_resolve_now_does_not_stop_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def nowhere(host: str) -> list[str]:
        raise OSError("no such host")

    async def private(host: str) -> list[str]:
        return ["192.168.1.5"]

    configured = settings(
        inbound_callback_url="https://hooks.example.com/in", callback_signing_secret=SECRET
    )
    monkeypatch.setattr(targets, "system_resolve", nowhere)
    await check_inbound_callback_url(configured)
    monkeypatch.setattr(targets, "system_resolve", private)
    with pytest.raises(RefusedInboundCallback, match=r"192\.168\.1\.5"):
        await check_inbound_callback_url(configured)


def test_twiml_escapes_the_reply() -> None:
    assert twiml(None).body.endswith(b"<Response/>")
    assert twiml("a & <b>").body.endswith(
        b"<Response><Message>a &amp; &lt;b&gt;</Message></Response>"
    )
