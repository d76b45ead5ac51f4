"""Serves the API with uvicorn."""

from __future__ import annotations

import ipaddress

import uvicorn

from postline.api.app import create_app
from postline.errors import ConfigurationError
from postline.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(settings: Settings, *, host: str, port: int, insecure_no_auth: bool = False) -> None:
    if not settings.api_key_list and not is_loopback(host) and not insecure_no_auth:
        raise ConfigurationError(
            f"refusing to listen on {host} without API_KEYS: set API_KEYS, bind to "
            "127.0.0.1, or pass --insecure-no-auth"
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
