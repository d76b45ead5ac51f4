"""Accept-time checks of a send's `callback_url` that need more than its text (SPEC 3).

Its form (http or https, length, no spaces) is checked with the other
fields in `domain/validation.py`. Whether its host is public needs a DNS
lookup, so it runs here, in the routes, only for sends that carry a
`callback_url`, and not at all with CALLBACK_ALLOW_PRIVATE_NETWORKS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postline.api.errors import ApiError, summary
from postline.callbacks import targets
from postline.settings import Settings


def _details(refused: targets.RefusedTarget) -> list[dict[str, Any]]:
    return [{"loc": ["callback_url"], "msg": str(refused), "type": "callback_target"}]


async def check_callback_target(settings: Settings, url: str) -> None:
    """Raises 422 unless every address of `url`'s host is public."""
    if settings.callback_allow_private_networks:
        return
    try:
        await targets.check_url(url)
    except targets.RefusedTarget as exc:
        details = _details(exc)
        raise ApiError(422, summary(details), details=details) from exc


async def batch_target_errors(
    settings: Settings, urls: Mapping[int, str]
) -> dict[int, dict[str, Any]]:
    """Batch index -> the item's error, for the items whose `callback_url` is refused.

    Each distinct URL is checked once, a few concurrently.
    """
    if settings.callback_allow_private_networks or not urls:
        return {}
    refused = await targets.check_urls(urls.values())
    errors: dict[int, dict[str, Any]] = {}
    for index, url in urls.items():
        found = refused[url]
        if found is not None:
            details = _details(found)
            errors[index] = {
                "code": "validation_error",
                "message": summary(details),
                "details": details,
            }
    return errors
