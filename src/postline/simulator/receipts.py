"""Delivery-status callbacks, sent and signed the way the real providers send them.

After an accepted send, and `callback_delay_ms` later:

- Twilio: when the request carried `StatusCallback`, a form POST per status
  (`sent` then `delivered`, `sent` then `undelivered`, or just `failed`,
  the last two with `ErrorCode`) with `MessageSid`, `MessageStatus`, `To`,
  `From`, `AccountSid`, `ApiVersion`, signed `X-Twilio-Signature` with the
  auth token of the sending account (`twilio_auth_token`, or that of a
  `twilio_accounts` entry) over the callback URL. Without a token
  there is nothing to sign with, so nothing is sent.
- SendGrid: when `sendgrid_event_webhook_url` is set, one signed Event
  Webhook POST: `[processed, delivered]`, `[processed, bounce]` for
  "undelivered", or `[dropped]` for "failed"; each event carries
  `sg_message_id`, `email`, `timestamp`, `event` and the message's
  custom args at the top level, as SendGrid's do. The ECDSA key is
  `sendgrid_webhook_private_key` or one generated at start; its public half
  is served at `GET /_sim/sendgrid/public-key` for Postline's
  SENDGRID_WEBHOOK_PUBLIC_KEY.

Callbacks run as tasks of their own, so they never slow the provider
answer; a callback that does not get a 2xx is tried again a few times with
backoff. `GET /_sim/callbacks` lists every delivery attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from postline.providers.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    public_key_base64,
    sendgrid_sign,
    twilio_signature,
)
from postline.simulator.clock import rfc3339
from postline.simulator.config import load_private_key, twilio_token
from postline.simulator.state import SimulatorState

logger = logging.getLogger(__name__)

PUBLIC_KEY_PATH = "/_sim/sendgrid/public-key"
CALLBACKS_PATH = "/_sim/callbacks"
API_VERSION = "2010-04-01"
MAX_TRIES = 4
RETRY_BASE_SECONDS = 0.25
TIMEOUT_SECONDS = 10.0
KEEP_ATTEMPTS = 10_000

_TWILIO_ERRORS = {"undelivered": 30003, "failed": 30008}
_BOUNCE = {
    "type": "bounce",
    "status": "5.1.1",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    "bounce_classification": "Invalid Address",
}


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


class ReceiptSender:
    """Schedules and sends the callbacks; one per simulator app."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._generated: ec.EllipticCurvePrivateKey | None = None
        self._loaded: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._attempts: deque[dict[str, Any]] = deque(maxlen=KEEP_ATTEMPTS)
        self._event_seq = 0

    # -- keys -------------------------------------------------------------------

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The configured key (re-read when the config changes), else the generated one."""
        pem = self._state.config.sendgrid_webhook_private_key
        if pem is not None:
            if self._loaded is None or self._loaded[0] != pem:
                self._loaded = (pem, load_private_key(pem))
            return self._loaded[1]
        if self._generated is None:
            self._generated = ec.generate_private_key(ec.SECP256R1())
        return self._generated

    def public_key(self) -> str:
        return public_key_base64(self.private_key())

    # -- scheduling (on the request path: no awaiting here) ------------------------

    def twilio(
        self,
        *,
        sid: str,
        account_sid: str,
        to: str,
        sender: str | None,
        callback_url: str | None,
        outcome: str | None,
    ) -> None:
        config = self._state.config
        token = twilio_token(config, account_sid)
        if not config.callbacks_enabled or not callback_url:
            return
        if token is None:
            logger.debug("no twilio_auth_token to sign the status callback of %s", sid)
            return
        outcome = outcome or config.delivery_outcome
        code = config.delivery_error_code or _TWILIO_ERRORS.get(outcome)
        base = {"MessageSid": sid, "SmsSid": sid, "AccountSid": account_sid, "To": to}
        base.update({"From": sender} if sender else {})
        base["ApiVersion"] = API_VERSION
        forms = []
        for status in ("sent", outcome) if outcome != "failed" else ("failed",):
            form = {**base, "MessageStatus": status, "SmsStatus": status}
            if status in _TWILIO_ERRORS and code is not None:
                form["ErrorCode"] = str(code)
            forms.append(form)
        self._spawn(self._send_twilio(callback_url, token, forms, config.callback_delay_ms))

    def sendgrid(
        self,
        *,
        message_id: str,
        to: str | None,
        custom_args: Mapping[str, Any],
        outcome: str | None,
    ) -> None:
        config = self._state.config
        url = config.sendgrid_event_webhook_url
        if not config.callbacks_enabled or not url or not to:
            return
        outcome = outcome or config.delivery_outcome
        self._spawn(
            self._send_sendgrid(
                url, message_id, to, dict(custom_args), outcome, config.callback_delay_ms
            )
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending ------------------------------------------------------------------

    async def _send_twilio(
        self, url: str, token: str, forms: list[dict[str, str]], delay_ms: float
    ) -> None:
        try:
            await asyncio.sleep(delay_ms / 1000.0)
            for form in forms:
                # In order: a `sent` goes out (or gives up) before the final status.
                headers = {
                    TWILIO_SIGNATURE_HEADER: twilio_signature(token, url, form),
                    "Content-Type": "application/x-www-form-urlencoded",
                }
                what = {"message_id": form["MessageSid"], "events": [form["MessageStatus"]]}
                await self._post("twilio", url, urlencode(form).encode(), headers, what)
        except Exception:  # a bug here must not surface as an unretrieved task error
            logger.exception("twilio status callback crashed")

    def _events(
        self, message_id: str, to: str, custom_args: dict[str, Any], outcome: str
    ) -> list[dict[str, Any]]:
        now = int(time.time())
        kinds = {"delivered": ["processed", "delivered"], "undelivered": ["processed", "bounce"]}
        events = []
        for kind in kinds.get(outcome, ["dropped"]):
            self._event_seq += 1
            event: dict[str, Any] = {
                **custom_args,
                "email": to,
                "timestamp": now,
                "event": kind,
                "sg_event_id": f"sim-{self._event_seq}",
                "sg_message_id": f"{message_id}.filterdrecv-simulator-{self._event_seq}-0",
                "smtp-id": f"<{message_id}@ismtpd.simulator>",
            }
            if kind == "delivered":
                event["response"] = "250 OK"
            elif kind == "bounce":
                event.update(_BOUNCE)
            elif kind == "dropped":
                event["reason"] = "Bounced Address"
            events.append(event)
        return events

    async def _send_sendgrid(
        self,
        url: str,
        message_id: str,
        to: str,
        custom_args: dict[str, Any],
        outcome: str,
        delay_ms: float,
    ) -> None:
        try:
            await asyncio.sleep(delay_ms / 1000.0)
            events = self._events(message_id, to, custom_args, outcome)
            payload = orjson.dumps(events)
            timestamp = str(int(time.time()))
            headers = {
                SENDGRID_SIGNATURE_HEADER: sendgrid_sign(self.private_key(), payload, timestamp),
                SENDGRID_TIMESTAMP_HEADER: timestamp,
                "Content-Type": "application/json",
            }
            what = {"message_id": message_id, "events": [e["event"] for e in events]}
            await self._post("sendgrid", url, payload, headers, what)
        except Exception:  # a bug here must not surface as an unretrieved task error
            logger.exception("sendgrid event webhook crashed")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        return self._session

    async def _post(
        self, provider: str, url: str, body: bytes, headers: dict[str, str], what: dict[str, Any]
    ) -> bool:
        for attempt in range(1, MAX_TRIES + 1):
            status: int | None = None
            error: str | None = None
            try:
                async with self._client().post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    status = answer.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            self._attempts.append(
                {
                    "provider": provider,
                    "url": url,
                    **what,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "ok": ok,
                    "at": time.time(),
                }
            )
            if ok:
                return True
            if attempt < MAX_TRIES:
                await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        logger.warning("%s callback to %s not accepted after %d tries", provider, url, MAX_TRIES)
        return False

    # -- app wiring ---------------------------------------------------------------

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(PUBLIC_KEY_PATH, self.get_public_key)
        app.router.add_get(CALLBACKS_PATH, self.get_callbacks)
        app.on_cleanup.append(self._close)

    async def get_public_key(self, request: web.Request) -> web.Response:
        return _json({"public_key": self.public_key()})

    async def get_callbacks(self, request: web.Request) -> web.Response:
        attempts = [{**a, "at": rfc3339(a["at"])} for a in self._attempts]
        return _json({"callbacks": attempts})

    async def idle(self) -> None:
        """Waits until every scheduled callback has been sent or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _close(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
