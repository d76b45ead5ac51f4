"""The simulated SendGrid v3 Mail Send API.

`POST /v3/mail/send`, JSON body, `Authorization: Bearer <key>`. Success is
`202` with an empty body and an `X-Message-Id` header; errors are
`{"errors": [{"message", "field", "help"}]}` with SendGrid's messages, and
a 400 lists every problem found, as SendGrid does.

Validation mirrors what SendGrid enforces synchronously: at least one
personalization, each with a non-empty `to` of valid addresses; `from.email`;
a subject and a `content` list unless a `template_id` is given; content
blocks with a type and a value, `text/plain` first; attachments with base64
`content` and a `filename`. Request order is the same as the Twilio
endpoint's: auth, script or knobs, validation, success. After a `202`,
signed Event Webhook callbacks follow when configured (see `receipts.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import time
from typing import Any

import orjson
from aiohttp import web

from postline.simulator import faults
from postline.simulator.config import SimulatorConfig
from postline.simulator.endpoint import Call, ProviderEndpoint
from postline.simulator.scripts import ScriptItem

MAIL_SEND_PATH = "/v3/mail/send"
# SendGrid's documented cap on the whole request.
MAX_REQUEST_BYTES = 30 * 1024 * 1024

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "authorization required",
    403: "access forbidden",
    404: "not found",
    413: "content too large",
    429: "too many requests",
    500: "internal error",
    503: "service unavailable",
}

MSG_FROM = (
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter."
)
MSG_PERSONALIZATIONS = (
    "The personalizations field is required and must have at least one personalization."
)
MSG_TO = (
    "The to array is required for all personalization objects, and must have at least one "
    "email object with a valid email address."
)
MSG_INVALID_ADDRESS = "Does not contain a valid address."
MSG_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template "
    "with a subject defined or if every personalization has a subject defined."
)
MSG_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There must "
    "be at least one defined content block."
)
MSG_CONTENT_TYPE = "The content type must be a string at least one character in length."
MSG_CONTENT_VALUE = "The content value must be a string at least one character in length."
MSG_CONTENT_ORDER = (
    "If present, text/plain must be first, followed by html, then any other content."
)
MSG_ATTACHMENT_CONTENT = "The attachment content is required."
MSG_ATTACHMENT_BASE64 = "The attachment content must be base64 encoded."
MSG_ATTACHMENT_FILENAME = "The attachment filename parameter is required."

FieldError = dict[str, Any]


def errors_body(*errors: FieldError) -> bytes:
    return orjson.dumps({"errors": list(errors)})


def field_error(message: str, field: str | None = None) -> FieldError:
    return {"message": message, "field": field, "help": None}


def error_for(fault: ScriptItem) -> bytes:
    """The SendGrid-shaped body for a scripted or injected fault."""
    message = fault.message or _DEFAULT_MESSAGES.get(fault.status, "error")
    return errors_body(field_error(message))


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _valid_email(value: object) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


def _check_personalizations(mail: dict[str, Any], errors: list[FieldError]) -> None:
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(field_error(MSG_PERSONALIZATIONS, "personalizations"))
        return
    for i, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(field_error(MSG_TO, f"personalizations.{i}.to"))
            continue
        for j, recipient in enumerate(to):
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not _valid_email(email):
                errors.append(
                    field_error(MSG_INVALID_ADDRESS, f"personalizations.{i}.to.{j}.email")
                )


def _check_subject(mail: dict[str, Any], errors: list[FieldError]) -> None:
    if _nonempty_str(mail.get("subject")):
        return
    personalizations = mail.get("personalizations")
    if (
        isinstance(personalizations, list)
        and personalizations
        and all(isinstance(p, dict) and _nonempty_str(p.get("subject")) for p in personalizations)
    ):
        return
    errors.append(field_error(MSG_SUBJECT, "subject"))


def _check_content(mail: dict[str, Any], errors: list[FieldError]) -> None:
    content = mail.get("content")
    if content is None and mail.get("template_id"):
        return
    if not isinstance(content, list) or not content:
        errors.append(field_error(MSG_CONTENT, "content"))
        return
    types: list[str] = []
    for i, block in enumerate(content):
        block_type = block.get("type") if isinstance(block, dict) else None
        value = block.get("value") if isinstance(block, dict) else None
        if not _nonempty_str(block_type):
            errors.append(field_error(MSG_CONTENT_TYPE, f"content.{i}.type"))
        else:
            types.append(str(block_type).lower())
        if not _nonempty_str(value):
            errors.append(field_error(MSG_CONTENT_VALUE, f"content.{i}.value"))
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(field_error(MSG_CONTENT_ORDER, "content"))


def _check_attachments(mail: dict[str, Any], errors: list[FieldError]) -> None:
    attachments = mail.get("attachments")
    if attachments is None:
        return
    if not isinstance(attachments, list):
        errors.append(field_error("Invalid type. Expected: array.", "attachments"))
        return
    for i, attachment in enumerate(attachments):
        item = attachment if isinstance(attachment, dict) else {}
        content = item.get("content")
        if not _nonempty_str(content):
            errors.append(field_error(MSG_ATTACHMENT_CONTENT, f"attachments.{i}.content"))
        else:
            try:
                base64.b64decode(str(content), validate=True)
            except binascii.Error:
                errors.append(field_error(MSG_ATTACHMENT_BASE64, f"attachments.{i}.content"))
        if not _nonempty_str(item.get("filename")):
            errors.append(field_error(MSG_ATTACHMENT_FILENAME, f"attachments.{i}.filename"))


def validate_mail(mail: object) -> list[FieldError]:
    """Every problem SendGrid would report for this body; empty when it is acceptable."""
    if not isinstance(mail, dict):
        return [field_error("Bad Request")]
    errors: list[FieldError] = []
    sender = mail.get("from")
    if not isinstance(sender, dict) or not _valid_email(sender.get("email")):
        errors.append(field_error(MSG_FROM, "from.email"))
    _check_personalizations(mail, errors)
    if not mail.get("template_id"):
        _check_subject(mail, errors)
    _check_content(mail, errors)
    _check_attachments(mail, errors)
    return errors


def _first_personalization(mail: dict[str, Any]) -> dict[str, Any]:
    personalizations = mail.get("personalizations")
    if isinstance(personalizations, list) and personalizations:
        first = personalizations[0]
        if isinstance(first, dict):
            return first
    return {}


def _first_email(addresses: object) -> str | None:
    if isinstance(addresses, list) and addresses and isinstance(addresses[0], dict):
        email = addresses[0].get("email")
        return email if isinstance(email, str) else None
    return None


def _content_parts(content: object) -> tuple[Any, Any]:
    """The first text/plain and text/html values."""
    text = html = None
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text/plain" and text is None:
            text = block.get("value")
        elif block.get("type") == "text/html" and html is None:
            html = block.get("value")
    return text, html


def summarize(mail: object) -> dict[str, Any]:
    """The inspection fields of a mail body (first recipient of the first personalization)."""
    if not isinstance(mail, dict):
        mail = {}
    first = _first_personalization(mail)
    sender = mail.get("from")
    text, html = _content_parts(mail.get("content"))
    custom_args: dict[str, Any] = {}
    for source in (mail.get("custom_args"), first.get("custom_args")):
        if isinstance(source, dict):
            custom_args.update(source)
    attachments = mail.get("attachments")
    return {
        "to": _first_email(first.get("to")),
        "from": sender.get("email") if isinstance(sender, dict) else None,
        "subject": first.get("subject") or mail.get("subject"),
        "html": html,
        "text": text,
        "attachments": attachments if isinstance(attachments, list) else [],
        "custom_args": custom_args,
    }


def auth_error(config: SimulatorConfig, header: str | None) -> str | None:
    """None when the bearer key is acceptable, else SendGrid's 401 message."""
    expected = config.sendgrid_api_key
    if expected is None:
        return None
    if not header:
        return "authorization required"
    if not header.startswith("Bearer ") or not hmac.compare_digest(header[7:], expected):
        return "The provided authorization grant is invalid, expired, or revoked"
    return None


_JSON = "application/json"


class SendGridEndpoint(ProviderEndpoint):
    """The aiohttp handler for Mail Send, bound to the simulator state."""

    provider = "sendgrid"

    async def _respond(self, request: web.Request, call: Call) -> web.Response:
        state = self._state
        too_large = False
        try:
            mail: Any = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            mail = None
        except web.HTTPRequestEntityTooLarge:
            mail, too_large = None, True
        fields = summarize(mail)
        call.fields = {
            "body": None,
            "media_urls": [],
            "status_callback": None,
            **fields,
            "json": mail,
        }

        def answer(
            status: int | None, message_id: str | None, ok: bool, outcome: str | None = None
        ) -> None:
            self._record(
                call,
                status=status,
                provider_message_id=message_id,
                error_code=None,
                auth_ok=ok,
                outcome=outcome or faults.outcome_for(status),
            )

        denied = auth_error(state.config, request.headers.get("Authorization"))
        if denied is not None:
            answer(401, None, False)
            return web.Response(
                body=errors_body(field_error(denied)), status=401, content_type=_JSON
            )

        if too_large:
            answer(413, None, True)
            body = errors_body(field_error(_DEFAULT_MESSAGES[413]))
            return web.Response(body=body, status=413, content_type=_JSON)

        plan = state.plan(fields["to"])
        call.fields["hung"] = bool(plan.hang)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.fault is not None:
            answer(plan.fault.status, None, True)
            headers = None
            if plan.fault.retry_after is not None:
                headers = _retry_headers(plan.fault.retry_after)
            return web.Response(
                body=error_for(plan.fault),
                status=plan.fault.status,
                content_type=_JSON,
                headers=headers,
            )

        errors = validate_mail(mail)
        if errors:
            answer(400, None, True)
            return web.Response(body=errors_body(*errors), status=400, content_type=_JSON)

        message_id = state.new_sendgrid_id()
        if self._receipts is not None:
            self._receipts.sendgrid(
                message_id=message_id,
                to=fields["to"],
                custom_args=fields["custom_args"],
                outcome=plan.receipt,
            )
        status, outcome = faults.after_accept(plan.after_accept, 202)
        answer(status, message_id, True, outcome)
        return _accepted_response(request, status, outcome, message_id)


def _accepted_response(
    request: web.Request, status: int, outcome: str, message_id: str
) -> web.Response:
    if outcome == faults.RESET:
        return faults.drop_connection(request)
    if status != 202:
        return web.Response(body=error_for(ScriptItem(status)), status=status, content_type=_JSON)
    return web.Response(status=202, headers={"X-Message-Id": message_id})


def _retry_headers(retry_after: int) -> dict[str, str]:
    # SendGrid itself signals the reset time with X-RateLimit-Reset; Retry-After
    # is added so one client code path can honour both providers.
    return {
        "Retry-After": str(retry_after),
        "X-RateLimit-Reset": str(int(time.time()) + retry_after),
    }
