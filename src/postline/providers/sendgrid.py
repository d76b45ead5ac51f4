"""SendGrid v3 Mail Send adapter (email).

`POST /v3/mail/send`, JSON, `Authorization: Bearer`; `202` with the
`X-Message-Id` header, stored as `provider_message_id`. The message id also
travels as `custom_args.postline_id`, which SendGrid echoes in every event
webhook, so receipts find their message even before the id is stored.
An email sent with `list_unsubscribe` carries the RFC 8058 headers with a
signed link (domain/unsubscribe.py).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from postline.domain.addresses import email_parts
from postline.domain.message import Message
from postline.domain.unsubscribe import Links, headers_for, link_key
from postline.providers.base import (
    TRANSPORT_ERRORS,
    SendResult,
    raise_for_answer,
    transport_error,
)
from postline.settings import Settings, whsec_key


def _address(value: str) -> dict[str, str]:
    name, addr = email_parts(value)
    return {"email": addr, "name": name} if name else {"email": addr}


def unsubscribe_links(settings: Settings) -> Links | None:
    """The server's one-click unsubscribe links, if it is set up for them
    (PUBLIC_BASE_URL and CALLBACK_SIGNING_SECRET)."""
    if not (settings.public_base_url and settings.callback_signing_secret):
        return None
    return Links(settings.public_base_url, link_key(whsec_key(settings.callback_signing_secret)))


def mail_body(message: Message, links: Links | None = None) -> dict[str, Any]:
    """The v3 mail/send JSON for `message`."""
    content = []
    if message.body:
        content.append({"type": "text/plain", "value": message.body})
    if message.html:
        content.append({"type": "text/html", "value": message.html})
    body: dict[str, Any] = {
        "personalizations": [
            {
                "to": [_address(message.to_addr)],
                "custom_args": {"postline_id": str(message.id)},
            }
        ],
        "from": _address(message.from_addr),
        "subject": message.subject,
        "content": content,
    }
    if message.list_unsubscribe and links is not None:
        body["headers"] = headers_for(links.url(message.id))
    if message.attachments:
        body["attachments"] = [
            {"content": a["content"], "filename": a["filename"], "type": a["content_type"]}
            for a in message.attachments
        ]
    return body


class SendGridProvider:
    """Sends through SendGrid with an injected aiohttp session."""

    name = "sendgrid"

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        links: Links | None = None,
    ) -> None:
        self._session = session
        self._links = links
        self._url = f"{base_url}/v3/mail/send"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
        }

    async def send(self, message: Message) -> SendResult:
        try:
            async with self._session.post(
                self._url, data=orjson.dumps(mail_body(message, self._links)), headers=self._headers
            ) as answer:
                raw = await answer.read()
                status, headers = answer.status, answer.headers
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        if 200 <= status < 300:
            return SendResult(provider=self.name, provider_message_id=headers.get("X-Message-Id"))
        raise_for_answer(self.name, status, headers, str(status), _first_error(raw, status))
        raise AssertionError("unreachable")  # pragma: no cover


def _first_error(raw: bytes, status: int) -> str:
    try:
        payload = orjson.loads(raw) if raw else {}
        return str(payload["errors"][0]["message"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return f"HTTP {status}"
