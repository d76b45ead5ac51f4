"""The pacing rules the settings describe (README, "Pacing").

The account buckets are the routes' (`providers.registry`): a message is
paced against the account of the route its send will take.
"""

from __future__ import annotations

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
