"""The pacing rules and provider accounts the settings describe (README, "Pacing")."""

from __future__ import annotations

import hashlib

from postline.domain.channels import Provider
from postline.domain.pacing import PacingRules, SenderClass
from postline.settings import Settings


def pacing_rules(settings: Settings) -> PacingRules:
    """`PACING_*` as rules: class rates, per-sender overrides, the concurrency cap."""
    senders: dict[str, float | SenderClass] = {
        sender: SenderClass(limit) if isinstance(limit, str) else float(limit)
        for sender, limit in settings.pacing_senders.items()
    }
    return PacingRules(
        rates={
            SenderClass.LONG_CODE: settings.pacing_long_code_rate,
            SenderClass.TOLL_FREE: settings.pacing_toll_free_rate,
            SenderClass.SHORT_CODE: settings.pacing_short_code_rate,
            SenderClass.WHATSAPP: settings.pacing_whatsapp_rate,
            SenderClass.EMAIL: settings.pacing_email_rate,
        },
        senders=senders,
        account_concurrency=settings.pacing_account_concurrency,
    )


def provider_accounts(settings: Settings) -> dict[Provider, str]:
    """A bucket name per provider account: Twilio's account SID, and for
    SendGrid a fingerprint of its API key (the key itself is a secret)."""
    key = settings.sendgrid_api_key or ""
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
    return {
        Provider.TWILIO: f"twilio:{settings.twilio_account_sid or '-'}",
        Provider.SENDGRID: f"sendgrid:{fingerprint}",
    }
