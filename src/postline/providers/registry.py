"""Builds the provider for each channel from the settings."""

from __future__ import annotations

import aiohttp

from postline.domain.channels import PROVIDER_OF, Channel
from postline.domain.channels import Provider as ProviderName
from postline.errors import ConfigurationError
from postline.providers.base import Provider
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


def build_providers(settings: Settings, session: aiohttp.ClientSession) -> dict[Channel, Provider]:
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
    by_name: dict[ProviderName, Provider] = {
        ProviderName.TWILIO: twilio,
        ProviderName.SENDGRID: sendgrid,
    }
    return {channel: by_name[name] for channel, name in PROVIDER_OF.items()}
