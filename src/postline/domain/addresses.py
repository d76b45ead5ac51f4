"""Address forms: E.164 phone numbers and RFC 5322 email addresses (SPEC 3.1).

Phone numbers are checked by form only; email addresses by syntax only (no DNS
look-up: a send must never wait on the network to be validated).
"""

from __future__ import annotations

import re
import string
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

from postline.domain.text import HEADER_UNSAFE

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
WHATSAPP_PREFIX = "whatsapp:"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_DISPLAY_NAME_FORM = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]+)>\s*$")


class AddressError(ValueError):
    """The address is not of the form its channel needs."""


def phone(value: str) -> str:
    if not E164.fullmatch(value):
        raise AddressError("must be an E.164 number: '+' then 8 to 15 digits, the first 1-9")
    return value


def whatsapp(value: str) -> str:
    """Accepts `+1555...` or `whatsapp:+1555...`; returns the bare E.164 number."""
    bare = value[len(WHATSAPP_PREFIX) :] if value.startswith(WHATSAPP_PREFIX) else value
    return phone(bare)


def email(value: str) -> str:
    """Accepts `addr` or `Name <addr>`; returns it with surrounding space trimmed.

    The display name becomes a mail header, so it may hold no control
    character or line break (`Name\r\nBcc: x <addr>` would add a header).
    And the address a provider will read back out of the value
    (`email_parts`) must be the one validated here: in `Bob, Jr <a@b.com>`
    an RFC 5322 parser sees the address `Bob`, so such a name must be quoted.
    """
    stripped = value.strip()
    if HEADER_UNSAFE.search(stripped):
        raise AddressError("must not contain control characters or line breaks")
    match = _DISPLAY_NAME_FORM.match(stripped)
    addr = match.group("addr").strip() if match else stripped
    if any(ch in addr for ch in "<>") or not addr:
        raise AddressError("must be an email address: 'addr' or 'Name <addr>'")
    try:
        validate_email(addr, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"is not a valid email address: {exc}") from exc
    if email_parts(stripped)[1] != addr:
        raise AddressError(
            "a display name with , ; : @ ( [ or a quote must be quoted: '\"Name, Jr\" <addr>'"
        )
    return stripped


def email_parts(value: str) -> tuple[str, str]:
    """(display name, address) of an address already accepted by `email`."""
    name, addr = parseaddr(value)
    return name, addr


def email_addr(value: str) -> str:
    """The bare address, lower-cased: what identifies the recipient."""
    return email_parts(value)[1].lower()


def recipient(value: str) -> str:
    """The form the list filter `to` compares: what identifies a recipient.

    A phone number (with or without `whatsapp:`) is its E.164 form; an email
    address, with or without a display name, its bare address lower-cased
    (the store's `message_recipient` gives stored addresses the same form).
    Only ASCII letters are folded, as PostgreSQL's `lower` does under the
    "C" collation, so the two agree whatever locale the database has.
    Anything else is refused rather than matched against nothing: a `+` left
    unencoded in a query string arrives as a space, and would otherwise find
    no message without saying why.
    """
    if "@" in value:
        return email_parts(email(value))[1].translate(_ASCII_LOWER)
    if value[:1] == " " and E164.fullmatch("+" + value[1:]):
        raise AddressError("the '+' arrived as a space: encode it as %2B in a query string")
    try:
        return whatsapp(value)
    except AddressError:
        raise AddressError(
            "must be an E.164 number ('+' then 8 to 15 digits) or an email address"
        ) from None
