"""Addresses a request names (a filter, a path segment, a body field) in recipient form.

The store keeps and matches addresses in recipient form
(`domain.addresses.recipient`: E.164 for phones, the bare address in lower
case for email), so a route turns what the client wrote into it before
asking; anything that is no address is a 422 naming where it came from.
"""

from __future__ import annotations

from postline.api.errors import field_error
from postline.domain import addresses


def as_recipient(value: str, *, loc: list[str]) -> str:
    """`value` in recipient form, or a 422 about the field at `loc`."""
    try:
        return addresses.recipient(value)
    except addresses.AddressError as exc:
        raise field_error(loc, str(exc)) from exc
