"""Builds each channel's routes (provider accounts, `domain/routes.py`) from the settings."""

from __future__ import annotations

import hashlib

import aiohttp

from postline.domain.channels import Channel
from postline.domain.routes import SENDGRID, TWILIO, TWILIO_BACKUP, route_plan
from postline.errors import ConfigurationError
from postline.providers.base import Route
from postline.providers.sendgrid import SendGridProvider, unsubscribe_links
from postline.providers.twilio import TwilioProvider
from postline.settings import Settings


def http_session(settings: Settings, *, connections: int) -> aiohttp.ClientSession:
    """One pooled session per process: connections are reused, never per message."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=connections, ttl_dns_cache=300
    )
    timeout = aiohttp.ClientTimeout(total=settings.provider_timeout_seconds)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)


def build_routes(settings: Settings, session: aiohttp.ClientSession) -> dict[Channel, list[Route]]:
    """Each channel's routes, most preferred first (the backup Twilio account when set)."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise ConfigurationError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
    if not settings.sendgrid_api_key:
        raise ConfigurationError("SENDGRID_API_KEY is required")
    twilio = TwilioProvider(
        session=session,
        base_url=settings.twilio_base_url,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        status_callback_base=settings.public_base_url,
    )
    sendgrid = SendGridProvider(
        session=session,
        base_url=settings.sendgrid_base_url,
        api_key=settings.sendgrid_api_key,
        links=unsubscribe_links(settings),
    )
    routes = {
        TWILIO: Route(TWILIO, twilio, twilio_account(settings.twilio_account_sid)),
        SENDGRID: Route(SENDGRID, sendgrid, sendgrid_account(settings.sendgrid_api_key)),
    }
    if settings.twilio_backup_account_sid and settings.twilio_backup_auth_token:
        backup = TwilioProvider(
            session=session,
            base_url=settings.twilio_backup_base_url or settings.twilio_base_url,
            account_sid=settings.twilio_backup_account_sid,
            auth_token=settings.twilio_backup_auth_token,
            status_callback_base=settings.public_base_url,
        )
        account = twilio_account(settings.twilio_backup_account_sid)
        routes[TWILIO_BACKUP] = Route(TWILIO_BACKUP, backup, account)
    plan = route_plan(twilio_backup=settings.twilio_backup)
    return {channel: [routes[name] for name in names] for channel, names in plan.items()}


def twilio_account(account_sid: str) -> str:
    """A Twilio account's pacing bucket: its account SID."""
    return f"twilio:{account_sid}"


def sendgrid_account(api_key: str) -> str:
    """SendGrid's pacing bucket: a fingerprint of its API key (the key is a secret)."""
    return "sendgrid:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]
