"""`/api/v1/unsubscribe/{token}`: the one-click unsubscribe link of an email (RFC 8058).

A mailbox provider (or the recipient, from the page a GET shows) POSTs
`List-Unsubscribe=One-Click` to the link in the email's `List-Unsubscribe`
header. The token is signed (domain/unsubscribe.py), so the link is its own
authority: no API key. The POST suppresses the email's recipient for the
email's `from` address (reason `unsubscribe`, source `list_unsubscribe`)
and answers 200; it is idempotent. A GET only shows a page with a button,
since RFC 8058 forbids unsubscribing on GET (link scanners follow GETs).
A token that is not genuine, or whose message is gone, is 404.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from postline.api.bodies import read_limited
from postline.api.deps import ComponentsDep
from postline.api.errors import ApiError
from postline.domain import addresses
from postline.domain.message import Message
from postline.domain.suppression import Reason, Source, Suppression, SuppressionChannel
from postline.providers.sendgrid import unsubscribe_links
from postline.store.suppressions import SuppressionStore

# Out of the OpenAPI document: these are links in emails, for mailbox
# providers and recipients, not part of the API a client calls.
router = APIRouter(prefix="/api/v1/unsubscribe", include_in_schema=False)

MAX_FORM_BYTES = 1024

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unsubscribe</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>Unsubscribe</h1>
<p>Stop email to <strong>{recipient}</strong> from <strong>{sender}</strong>?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>
</body></html>
"""

_DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">
<p>You will get no more email from this sender.</p></body></html>
"""


async def _message(parts: ComponentsDep, token: str) -> Message:
    links = unsubscribe_links(parts.settings)
    message_id = links.message_of(token) if links is not None else None
    message = await parts.store.get(message_id) if message_id is not None else None
    if message is None:
        raise ApiError(404, "no such unsubscribe link")
    return message


@router.get("/{token}")
async def page(token: str, parts: ComponentsDep) -> Response:
    """A page with one button that POSTs to this link; changes nothing itself."""
    message = await _message(parts, token)
    return HTMLResponse(
        _PAGE.format(
            recipient=html.escape(addresses.recipient(message.to_addr)),
            sender=html.escape(addresses.recipient(message.from_addr)),
        )
    )


@router.post("/{token}")
async def unsubscribe(token: str, request: Request, parts: ComponentsDep) -> Response:
    """Suppresses the email's recipient for its sender (RFC 8058 one-click)."""
    await read_limited(request, limit=MAX_FORM_BYTES, what="an unsubscribe request")
    message = await _message(parts, token)
    await SuppressionStore(parts.pool).add(
        [
            Suppression(
                channel=SuppressionChannel.EMAIL,
                recipient=addresses.recipient(message.to_addr),
                sender=addresses.recipient(message.from_addr),
                reason=Reason.UNSUBSCRIBE,
                source=Source.LIST_UNSUBSCRIBE,
            )
        ]
    )
    return HTMLResponse(_DONE)
