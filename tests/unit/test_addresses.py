"""Address forms (domain.addresses), as properties over many inputs (SPEC 3.1).

E.164 by form only: `+`, then 8 to 15 ASCII digits, the first 1-9; nothing
else, not even a trailing newline or another script's digits. Email by
syntax: an accepted value reads back the address that was validated.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.domain import addresses
from postline.domain.text import HEADER_UNSAFE

e164 = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
# Mostly digits, so that near misses are common, with any other character mixed in.
all_digits = st.from_regex(r"[0-9]{0,20}", fullmatch=True)
digitish = st.text(st.sampled_from("0123456789") | st.characters(), max_size=20) | all_digits


def is_e164(value: str) -> bool:
    digits = value[1:]
    return (
        value.startswith("+")
        and digits.isascii()
        and digits.isdigit()
        and 8 <= len(digits) <= 15
        and digits[0] != "0"
    )


def accepted(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except addresses.AddressError:
        return False
    return True


@given(number=e164)
def test_a_valid_number_reads_back_unchanged_on_every_phone_channel(number: str) -> None:
    assert addresses.phone(number) == number
    assert addresses.whatsapp(number) == number
    assert addresses.whatsapp(addresses.WHATSAPP_PREFIX + number) == number


@given(rest=digitish)
def test_a_number_is_accepted_exactly_when_it_is_plus_and_8_to_15_ascii_digits(rest: str) -> None:
    value = "+" + rest
    assert accepted(addresses.phone, value) == is_e164(value)


@given(value=st.text(max_size=20))
def test_without_a_leading_plus_nothing_is_a_number(value: str) -> None:
    if not value.startswith("+"):
        assert not accepted(addresses.phone, value)


@given(
    number=e164,
    position=st.integers(min_value=1, max_value=16),  # past the end: appended
    junk=st.sampled_from("\n\r\t +-.()\x00٣\uff10") | st.characters(),
)
def test_one_character_other_than_an_ascii_digit_after_the_plus_is_refused(
    number: str, position: int, junk: str
) -> None:
    if not ("0" <= junk <= "9"):
        value = number[:position] + junk + number[position:]
        assert not accepted(addresses.phone, value)
        assert not accepted(addresses.whatsapp, value)


@pytest.mark.parametrize("first", "019")
@pytest.mark.parametrize("digits", range(1, 20))
def test_length_bounds_and_the_first_digit(digits: int, first: str) -> None:
    value = "+" + first + "5" * (digits - 1)
    assert accepted(addresses.phone, value) == (8 <= digits <= 15 and first != "0")


simple_email = st.from_regex(
    r"[a-z0-9]{1,20}([._+-][a-z0-9]{1,10})?@([a-z0-9]{1,10}\.){1,2}(com|org|net|de)",
    fullmatch=True,
)


@given(addr=simple_email, upper=st.booleans(), name=st.sampled_from(["", "Bob", "Ann Lee"]))
def test_an_ordinary_address_is_accepted_and_identifies_its_recipient(
    addr: str, upper: bool, name: str
) -> None:
    value = addr.upper() if upper else addr
    given_form = f"{name} <{value}>" if name else value
    stored = addresses.email(f"  {given_form} ")
    assert stored == given_form
    assert addresses.email_parts(stored) == (name, value)
    assert addresses.email_addr(stored) == addr


@given(value=st.text(max_size=40) | simple_email.map(lambda a: f"x{a}"))
def test_an_accepted_address_is_one_line_and_accepted_again_unchanged(value: str) -> None:
    try:
        stored = addresses.email(value)
    except addresses.AddressError:
        return
    assert not HEADER_UNSAFE.search(stored)
    assert addresses.email(stored) == stored
    assert "@" in addresses.email_parts(stored)[1]


@given(e164)
def test_a_phone_recipient_is_its_e164_form_with_or_without_whatsapp(number: str) -> None:
    assert addresses.recipient(number) == number
    assert addresses.recipient(f"whatsapp:{number}") == number
    # an unencoded '+' in a query string arrives as a space: refused, saying so
    with pytest.raises(addresses.AddressError, match="%2B"):
        addresses.recipient(" " + number[1:])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ("Bob <Bob@Example.com>", "bob@example.com"),
        ('"Smith, Bob" <BOB@example.com>', "bob@example.com"),
    ],
)
def test_an_email_recipient_is_its_bare_address_lower_cased(value: str, expected: str) -> None:
    assert addresses.recipient(value) == expected


@pytest.mark.parametrize("value", ["15559876543", "+1555", "bob", "@example.com", "a@b@c", ""])
def test_anything_else_is_no_recipient(value: str) -> None:
    with pytest.raises(addresses.AddressError):
        addresses.recipient(value)
