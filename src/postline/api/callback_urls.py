"""Accept-time checks of a send's `callback_url` that need more than its text (SPEC 3).

Its form (http or https, length, no spaces) is checked with the other
fields in `domain/validation.py`. Whether its host is public needs a DNS
lookup, so it runs here, in the routes, only for sends that carry a
`callback_url`, and not at all with CALLBACK_ALLOW_PRIVATE_NETWORKS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from postline.api.errors import invalid, item_error
from postline.callbacks import targets
from postline.settings import Settings

log = logging.getLogger("postline.api")


class RefusedInboundCallback(RuntimeError):
    """INBOUND_CALLBACK_URL points where callbacks may not go: the API will not start."""


def _details(refused: targets.RefusedTarget) -> list[dict[str, Any]]:
    return [{"loc": ["callback_url"], "msg": str(refused), "type": "callback_target"}]


async def check_callback_target(settings: Settings, url: str) -> None:
    """Raises 422 unless every address of `url`'s host is public."""
    if settings.callback_allow_private_networks:
        return
    try:
        await targets.check_url(url)
    except targets.RefusedTarget as exc:
        raise invalid(_details(exc)) from exc


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
            errors[index] = item_error(invalid(_details(found)))
    return errors


async def check_inbound_callback_url(settings: Settings) -> None:
    """Checks INBOUND_CALLBACK_URL at start like a send's `callback_url`.

    A host that is or resolves to a forbidden address stops the start
    (`RefusedInboundCallback`): that is a mistake in the configuration. A
    host that does not resolve now is only logged, so a DNS hiccup at start
    does not keep the API down; the workers' connect-time guard still
    refuses any forbidden address it resolves to later.
    """
    url = settings.inbound_callback_url
    if not url or settings.callback_allow_private_networks:
        return
    try:
        await targets.check_url(url)
    except targets.Unresolvable as exc:
        log.warning("INBOUND_CALLBACK_URL %s", exc)
    except targets.RefusedTarget as exc:
        raise RefusedInboundCallback(
            f"INBOUND_CALLBACK_URL is refused: {exc} (CALLBACK_ALLOW_PRIVATE_NETWORKS=true "
            "allows it)"
        ) from exc
