"""Inbound messages played by the simulator: Twilio's inbound webhook, signed as Twilio signs it.

- `POST /_sim/inbound` with `{"from", "to", "body", "channel"?, "media_urls"?,
  "message_sid"?, "url"?}` POSTs one inbound message webhook to `url`, else
  the configured `twilio_inbound_webhook_url`, and answers once Postline has:
  `{"message_sid", "url", "status", "reply", "answer"}`, where `reply` is
  the text of the TwiML `<Message>` Postline answered with (null when its
  answer was an empty `<Response/>`). `from` is the recipient texting in,
  `to` the Postline number. `channel` is `sms` (the default; `mms` when
  media is given) or `whatsapp`, whose addresses go out `whatsapp:`-prefixed.
  Giving an earlier `message_sid` sends that message again, as Twilio does
  when it retries.
- `GET /_sim/inbound` lists every webhook sent and what came back.

The form carries what Twilio's does: `MessageSid` (and `SmsMessageSid`,
`SmsSid`), `AccountSid`, `From`, `To`, `Body`, `NumMedia`, `NumSegments`,
`SmsStatus=received`, `ApiVersion`, `MediaUrl<n>` / `MediaContentType<n>`,
and for WhatsApp `WaId` and `ProfileName`. It is signed with
`X-Twilio-Signature` over the URL and the form, keyed by
`twilio_auth_token`; there is nothing to sign with without one (`409`).
"""

from __future__ import annotations

import mimetypes
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp
import orjson
from aiohttp import web

from postline.providers.signatures import TWILIO_SIGNATURE_HEADER, twilio_signature
from postline.simulator.clock import rfc3339
from postline.simulator.receipts import API_VERSION, TIMEOUT_SECONDS
from postline.simulator.state import SimulatorState

INBOUND_PATH = "/_sim/inbound"
CHANNELS = ("sms", "mms", "whatsapp")
KEEP_SENT = 10_000
_FIELDS = {"from", "to", "body", "channel", "media_urls", "message_sid", "url"}


class InboundRequestError(ValueError):
    """The `/_sim/inbound` body cannot be played; the text says why."""


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InboundRequestError(f"{name} must be a non-empty string")
    return value


def _media_urls(body: dict[str, Any]) -> list[str]:
    urls = body.get("media_urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
        raise InboundRequestError("media_urls must be a list of URLs")
    return urls


def inbound_form(body: dict[str, Any], *, sid: str, account_sid: str) -> dict[str, str]:
    """Twilio's inbound webhook form for a `/_sim/inbound` body."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InboundRequestError(f"unknown fields: {', '.join(unknown)}")
    sender, to = _text(body, "from"), _text(body, "to")
    text = _text(body, "body", required=False) or ""
    media = _media_urls(body)
    channel = body.get("channel") or ("mms" if media else "sms")
    if channel not in CHANNELS:
        raise InboundRequestError(f"channel must be one of {', '.join(CHANNELS)}")
    assert sender is not None and to is not None
    prefix = "whatsapp:" if channel == "whatsapp" else ""
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": account_sid,
        "From": prefix + sender.removeprefix("whatsapp:"),
        "To": prefix + to.removeprefix("whatsapp:"),
        "Body": text,
        "NumMedia": str(len(media)),
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }
    for index, url in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = mimetypes.guess_type(url)[0] or "image/jpeg"
    if channel == "whatsapp":
        form["WaId"] = sender.removeprefix("whatsapp:").lstrip("+")
        form["ProfileName"] = "Simulator"
    return form


def reply_of(answer: bytes) -> str | None:
    """The text of the first TwiML `<Message>` in an answer, or None."""
    try:
        # The answer is from the server under test, on loopback; not untrusted input.
        root = ElementTree.fromstring(answer)  # noqa: S314
    except ElementTree.ParseError:
        return None
    found = root.find("Message")
    if found is None:
        return None
    return "".join(found.itertext())


class InboundPlayer:
    """Plays inbound messages at Postline; one per simulator app."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._sent: deque[dict[str, Any]] = deque(maxlen=KEEP_SENT)

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(INBOUND_PATH, self.post_inbound)
        app.router.add_get(INBOUND_PATH, self.get_inbound)

    async def get_inbound(self, request: web.Request) -> web.Response:
        return _json({"inbound": [{**s, "at": rfc3339(s["at"])} for s in self._sent]})

    async def post_inbound(self, request: web.Request) -> web.Response:
        config = self._state.config
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error("invalid_json", str(exc))
        if not isinstance(body, dict):
            return _error("invalid_inbound", "the body must be a JSON object")
        url = body.get("url") or config.twilio_inbound_webhook_url
        if not isinstance(url, str) or not url:
            return _error("invalid_inbound", "no url given and no twilio_inbound_webhook_url set")
        token = config.twilio_auth_token
        if token is None:
            return _error("no_auth_token", "no twilio_auth_token to sign the webhook with", 409)
        account = config.twilio_account_sid or "AC" + "0" * 32
        try:
            media = bool(_media_urls(body))
            sid = body.get("message_sid") or ("MM" if media else "SM") + self._state.new_hex_id()
            if not isinstance(sid, str):
                raise InboundRequestError("message_sid must be a string")
            form = inbound_form(body, sid=sid, account_sid=account)
        except InboundRequestError as exc:
            return _error("invalid_inbound", str(exc))
        result = await self._post(url, token, form)
        self._sent.append({**result, "from": form["From"], "to": form["To"], "at": time.time()})
        return _json(result)

    async def _post(self, url: str, token: str, form: dict[str, str]) -> dict[str, Any]:
        headers = {
            TWILIO_SIGNATURE_HEADER: twilio_signature(token, url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        result: dict[str, Any] = {"message_sid": form["MessageSid"], "url": url}
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=urlencode(form).encode(), headers=headers) as answer,
            ):
                raw = await answer.read()
                result.update(status=answer.status, error=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raw = b""
            result.update(status=None, error=f"{type(exc).__name__}: {exc}")
        result["answer"] = raw.decode("utf-8", "replace")
        ok = result["status"] == 200
        result["reply"] = reply_of(raw) if ok else None
        return result
