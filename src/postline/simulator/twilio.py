"""The simulated Twilio Messages API (`CreateMessage`).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP
basic auth. Answers follow Twilio's published OpenAPI document
(`api.v2010.account.message`): `201` with a Message resource whose status is
`queued`, or an error body `{"code", "message", "more_info", "status"}`.

A request goes through, in order: auth (401 at once, nothing consumed),
the recipient's script item or the random knobs (latency, then 500/429),
Twilio's synchronous validation (400 with Twilio's error codes), and finally
the success answer. Every answer is recorded for `/_sim/requests`.

After a `201`, delivery-status callbacks go to `StatusCallback` (see
`receipts.py`); they never delay the answer. The ambiguous-outcome faults
of `faults.py` (hang, reset or 500 after acceptance) fit into the same
order: a hang before the script or knobs, the others in place of the 201.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp import web

from postline.simulator import faults
from postline.simulator.clock import rfc2822_now
from postline.simulator.config import SimulatorConfig
from postline.simulator.endpoint import Call, ProviderEndpoint
from postline.simulator.scripts import ScriptItem
from postline.simulator.state import Plan

MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600

_E164 = re.compile(r"\+[1-9]\d{7,14}")
_SHORT_CODE = re.compile(r"\d{5,6}")
# Alphanumeric sender IDs: up to 11 letters, digits and spaces, one letter at least.
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_CHANNEL_PREFIX = "whatsapp:"

# Default code and message for scripted or injected errors without their own.
# A bare scripted 400 reads as the commonest permanent failure, a bad number.
_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    400: (21211, "Invalid 'To' Phone Number"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}

# GSM 03.38: the basic set costs one septet, the extension set two.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class TwilioError:
    """A Twilio error answer: HTTP status, Twilio error code, message."""

    status: int
    code: int
    message: str

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "code": self.code,
                "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                "status": self.status,
            }
        )


def error_for(fault: ScriptItem) -> TwilioError:
    """The Twilio-shaped answer for a scripted or injected fault."""
    default_code, default_message = _DEFAULT_ERRORS.get(
        fault.status, (20000 + fault.status, "Error")
    )
    return TwilioError(
        fault.status,
        fault.code if fault.code is not None else default_code,
        fault.message if fault.message is not None else default_message,
    )


def _account_down(fault: dict[str, float]) -> Plan:
    """Every request of a faulted account answered with its status (`account_faults`)."""
    return Plan(0.0, ScriptItem(int(fault["status"])))


def _channel(address: str) -> str:
    return _CHANNEL_PREFIX if address.startswith(_CHANNEL_PREFIX) else ""


def is_valid_to(to: str) -> bool:
    """E.164 by form (`+`, 8-15 digits, first 1-9), optionally `whatsapp:`-prefixed."""
    return _E164.fullmatch(to.removeprefix(_CHANNEL_PREFIX)) is not None


def is_valid_from(sender: str) -> bool:
    if sender.startswith(_CHANNEL_PREFIX):
        return _E164.fullmatch(sender.removeprefix(_CHANNEL_PREFIX)) is not None
    return bool(
        _E164.fullmatch(sender)
        or _SHORT_CODE.fullmatch(sender)
        or _ALPHANUMERIC_SENDER.fullmatch(sender)
    )


def _is_http_url(url: str, *, callback: bool = False) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    # Twilio refuses underscores in StatusCallback hostnames and URLs over 4000 chars.
    return not callback or ("_" not in parts.hostname and len(url) <= 4000)


def validate_create(
    *,
    to: str | None,
    sender: str | None,
    body: str | None,
    media_urls: list[str],
    status_callback: str | None,
    messaging_service_sid: str | None,
    content_sid: str | None = None,
) -> TwilioError | None:
    """Twilio's synchronous checks on a CreateMessage request, in Twilio's order."""
    if not to:
        return TwilioError(400, 21604, "A 'To' phone number is required.")
    if not sender and not messaging_service_sid:
        return TwilioError(400, 21603, "A 'From' phone number is required.")
    if not body and not media_urls and not content_sid:
        return TwilioError(400, 21602, "Message body is required.")
    if not is_valid_to(to):
        return TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if sender:
        if not is_valid_from(sender):
            return TwilioError(
                400,
                21212,
                f"The 'From' number {sender} is not a valid phone number, "
                "shortcode, or alphanumeric sender ID.",
            )
        if _channel(sender) != _channel(to):
            return TwilioError(
                400,
                21910,
                "Invalid From and To pair. From and To should be of the same channel",
            )
    if body is not None and len(body) > MAX_BODY_CHARS:
        return TwilioError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if any(not _is_http_url(url) for url in media_urls):
        return TwilioError(400, 21620, "Invalid media URL(s).")
    if status_callback and not _is_http_url(status_callback, callback=True):
        return TwilioError(
            400, 21609, f"The StatusCallback URL {status_callback} is not a valid URL."
        )
    return None


def num_segments(body: str) -> int:
    """SMS segments Twilio would bill: GSM-7 160/153 septets, else UCS-2 70/67 units."""
    if not body:
        return 1
    septets = 0
    for char in body:
        if char in _GSM_BASIC:
            septets += 1
        elif char in _GSM_EXTENSION:
            septets += 2
        else:
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


def message_resource(
    *,
    sid: str,
    account_sid: str,
    to: str,
    sender: str | None,
    body: str | None,
    media_count: int,
    messaging_service_sid: str | None,
) -> dict[str, Any]:
    """The `api.v2010.account.message` resource as answered by CreateMessage."""
    now = rfc2822_now()
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    # WhatsApp and MMS are one message whatever the length; SMS is segmented.
    single = media_count > 0 or to.startswith(_CHANNEL_PREFIX)
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body or "",
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": messaging_service_sid,
        # Twilio sends these two counts as strings.
        "num_media": str(media_count),
        "num_segments": "1" if single else str(num_segments(body or "")),
        "price": None,
        "price_unit": None,
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": to,
        "uri": f"{uri}.json",
    }


def auth_ok(config: SimulatorConfig, header: str | None, path_account_sid: str) -> bool:
    """Basic auth check; everything passes when no Twilio credentials are configured.

    An account of `twilio_accounts` is checked against its own token.
    """
    expected_sid = config.twilio_account_sid
    expected_token = config.twilio_auth_token
    if path_account_sid in config.twilio_accounts:
        expected_sid, expected_token = path_account_sid, config.twilio_accounts[path_account_sid]
    elif expected_sid is None and expected_token is None:
        return True
    if header is None or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    if username != path_account_sid:
        return False
    if expected_sid is not None and username != expected_sid:
        return False
    return expected_token is None or hmac.compare_digest(password, expected_token)


def parse_form(raw: bytes) -> dict[str, str | list[str]]:
    """Form fields as sent; a repeated field (MediaUrl) becomes a list."""
    form: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        previous = form.get(key)
        if previous is None:
            form[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            form[key] = [previous, value]
    return form


def _first(form: dict[str, str | list[str]], name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _all(form: dict[str, str | list[str]], name: str) -> list[str]:
    value = form.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_JSON = "application/json"


class TwilioEndpoint(ProviderEndpoint):
    """The aiohttp handler for CreateMessage, bound to the simulator state."""

    provider = "twilio"

    async def _respond(self, request: web.Request, call: Call) -> web.Response:
        state = self._state
        account_sid = request.match_info["AccountSid"]
        form = parse_form(await request.read())
        to = _first(form, "To")
        sender = _first(form, "From")
        body = _first(form, "Body")
        media_urls = _all(form, "MediaUrl")
        status_callback = _first(form, "StatusCallback")
        service_sid = _first(form, "MessagingServiceSid")
        call.fields = {
            "account_sid": account_sid,
            "to": to,
            "from": sender,
            "body": body,
            "media_urls": media_urls,
            "status_callback": status_callback,
            "messaging_service_sid": service_sid,
            "subject": None,
            "html": None,
            "text": None,
            "attachments": [],
            "custom_args": {},
            "form": form,
        }

        def answer(
            status: int | None,
            sid: str | None,
            error: TwilioError | None,
            ok: bool,
            outcome: str | None = None,
        ) -> None:
            self._record(
                call,
                status=status,
                provider_message_id=sid,
                error_code=error.code if error else None,
                auth_ok=ok,
                outcome=outcome or faults.outcome_for(status),
            )

        if not auth_ok(state.config, request.headers.get("Authorization"), account_sid):
            error = TwilioError(401, 20003, "Authenticate")
            answer(401, None, error, False)
            return web.Response(
                body=error.body(),
                status=401,
                content_type=_JSON,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )

        account_fault = state.config.account_faults.get(account_sid)
        if account_fault is not None:
            hang = account_fault.get("hang_ms")
            call.fields["hung"] = hang is not None
            plan = Plan(hang / 1000.0, None) if hang is not None else _account_down(account_fault)
        else:
            plan = state.plan(to)
            call.fields["hung"] = bool(plan.hang)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.fault is not None:
            error = error_for(plan.fault)
            answer(error.status, None, error, True)
            headers = None
            if plan.fault.retry_after is not None:
                headers = {"Retry-After": str(plan.fault.retry_after)}
            return web.Response(
                body=error.body(), status=error.status, content_type=_JSON, headers=headers
            )

        invalid = validate_create(
            to=to,
            sender=sender,
            body=body,
            media_urls=media_urls,
            status_callback=status_callback,
            messaging_service_sid=service_sid,
            content_sid=_first(form, "ContentSid"),
        )
        if invalid is not None:
            answer(invalid.status, None, invalid, True)
            return web.Response(body=invalid.body(), status=invalid.status, content_type=_JSON)

        assert to is not None  # validate_create refuses a missing To
        sid = ("MM" if media_urls else "SM") + state.new_hex_id()
        resource = message_resource(
            sid=sid,
            account_sid=account_sid,
            to=to,
            sender=sender,
            body=body,
            media_count=len(media_urls),
            messaging_service_sid=service_sid,
        )
        if self._receipts is not None:
            self._receipts.twilio(
                sid=sid,
                account_sid=account_sid,
                to=to,
                sender=sender,
                callback_url=status_callback,
                outcome=plan.receipt,
            )
        status, outcome = faults.after_accept(plan.after_accept, 201)
        late = error_for(ScriptItem(status)) if status != 201 else None
        answer(status, sid, late, True, outcome)
        if outcome == faults.RESET:
            return faults.drop_connection(request)
        if late is not None:
            return web.Response(body=late.body(), status=late.status, content_type=_JSON)
        return web.Response(body=orjson.dumps(resource), status=201, content_type=_JSON)
