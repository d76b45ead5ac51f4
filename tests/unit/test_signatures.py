"""Webhook signatures: Twilio's documented vectors, SendGrid's ECDSA scheme, each
cross-checked against the providers' own Python libraries."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from postline.providers.signatures import (
    InvalidKeyError,
    load_sendgrid_public_key,
    public_key_base64,
    sendgrid_sign,
    sendgrid_signature_valid,
    sendgrid_timestamp_fresh,
    twilio_signature,
    twilio_signature_valid,
)

# The example of Twilio's "Secure your app" page and its helper-library snippets.
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def doc_params(caller: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ],
)
def test_twilio_signature_reproduces_the_documented_examples(caller: str, expected: str) -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, doc_params(caller)) == expected
    assert twilio_signature_valid(DOC_TOKEN, DOC_URL, doc_params(caller), expected)


def test_twilio_signature_ignores_parameter_order() -> None:
    params = doc_params("+14158675310")
    reversed_pairs = list(reversed(list(params.items())))

    assert twilio_signature(DOC_TOKEN, DOC_URL, reversed_pairs) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda p, u, t: (p | {"Digits": "1235"}, u, t), id="changed-value"),
        pytest.param(lambda p, u, t: (p | {"Extra": ""}, u, t), id="added-parameter"),
        pytest.param(lambda p, u, t: (p, u.replace("foo=1", "foo=2"), t), id="changed-query"),
        pytest.param(lambda p, u, t: (p, u.replace("https", "http"), t), id="changed-scheme"),
        pytest.param(lambda p, u, t: (p, u, "54321"), id="other-token"),
    ],
)
def test_twilio_signature_rejects_any_change(tamper: object) -> None:
    params, url, token = tamper(doc_params("+14158675310"), DOC_URL, DOC_TOKEN)  # type: ignore[operator]

    assert not twilio_signature_valid(token, url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")


@pytest.mark.parametrize("signature", [None, "", "not base64!", "GvWf1cFY/Q7PnoempGyD5oXAezd="])
def test_twilio_signature_missing_or_malformed_is_invalid(signature: str | None) -> None:
    assert not twilio_signature_valid(DOC_TOKEN, DOC_URL, doc_params("+14158675310"), signature)


def test_twilio_signature_needs_a_token() -> None:
    signature = twilio_signature("", DOC_URL, {})

    assert not twilio_signature_valid("", DOC_URL, {}, signature)


def test_twilio_repeated_parameters_and_the_library_agree() -> None:
    url = "https://postline.example.com/api/v1/webhooks/twilio/status"
    pairs = [
        ("MediaUrl", "https://b.example/2"),
        ("Body", "hi"),
        ("MediaUrl", "https://a.example/1"),
    ]
    signature = twilio_signature("token", url, pairs)

    class MultiDict(dict[str, list[str]]):  # the shape the library reads repeats from
        def getall(self, name: str) -> list[str]:
            return self[name]

    as_lists = {"MediaUrl": ["https://b.example/2", "https://a.example/1"], "Body": ["hi"]}
    assert RequestValidator("token").compute_signature(url, MultiDict(as_lists)) == signature
    assert twilio_signature_valid("token", url, as_lists, signature)


@pytest.mark.parametrize(
    ("signed", "checked"),
    [
        ("https://example.com/hook", "https://example.com:443/hook"),
        ("https://example.com:443/hook", "https://example.com/hook"),
        ("http://example.com/hook?x=1", "http://example.com:80/hook?x=1"),
    ],
)
def test_twilio_default_port_may_be_present_or_not(signed: str, checked: str) -> None:
    signature = twilio_signature("token", signed, {"MessageSid": "SM1"})

    assert twilio_signature_valid("token", checked, {"MessageSid": "SM1"}, signature)


def test_twilio_other_ports_are_not_interchangeable() -> None:
    signature = twilio_signature("token", "https://example.com:8443/hook", {})

    assert not twilio_signature_valid("token", "https://example.com/hook", {}, signature)


@pytest.fixture(scope="module")
def key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, public_key_base64(private)


def test_sendgrid_signature_round_trip(key_pair: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public = key_pair
    payload = b'[{"event":"delivered","sg_message_id":"abc.filter0001"}]'
    signature = sendgrid_sign(private, payload, "1700000000")

    assert sendgrid_signature_valid(
        load_sendgrid_public_key(public), payload, signature, "1700000000"
    )


def test_sendgrid_signature_is_what_the_sendgrid_library_verifies(
    key_pair: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    private, public = key_pair
    payload = '[{"email":"ana@example.org","event":"processed"}]'
    signature = sendgrid_sign(private, payload.encode(), "1700000001")

    assert EventWebhook(public).verify_signature(payload, signature, "1700000001")


def test_sendgrid_accepts_a_signature_made_by_the_library_scheme(
    key_pair: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    from cryptography.hazmat.primitives import hashes

    private, public = key_pair
    payload = b'[{"event":"bounce"}]'
    raw = private.sign(b"1700000002" + payload, ec.ECDSA(hashes.SHA256()))

    key = load_sendgrid_public_key(public)
    assert sendgrid_signature_valid(key, payload, base64.b64encode(raw).decode(), "1700000002")


@pytest.mark.parametrize(
    ("payload", "timestamp", "signature"),
    [
        pytest.param(b'[{"event":"delivered"}] ', "1700000000", None, id="changed-payload"),
        pytest.param(b'[{"event":"delivered"}]', "1700000001", None, id="changed-timestamp"),
        pytest.param(b'[{"event":"delivered"}]', "1700000000", "", id="empty-signature"),
        pytest.param(b'[{"event":"delivered"}]', "1700000000", "%%%", id="not-base64"),
        pytest.param(b'[{"event":"delivered"}]', "1700000000", "AAAA", id="not-der"),
        pytest.param(b'[{"event":"delivered"}]', "", None, id="no-timestamp"),
    ],
)
def test_sendgrid_rejects_tampering(
    key_pair: tuple[ec.EllipticCurvePrivateKey, str],
    payload: bytes,
    timestamp: str,
    signature: str | None,
) -> None:
    private, public = key_pair
    good = sendgrid_sign(private, b'[{"event":"delivered"}]', "1700000000")

    key = load_sendgrid_public_key(public)
    assert not sendgrid_signature_valid(
        key, payload, good if signature is None else signature, timestamp
    )


def test_sendgrid_rejects_another_key(key_pair: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, _ = key_pair
    other = public_key_base64(ec.generate_private_key(ec.SECP256R1()))
    signature = sendgrid_sign(private, b"[]", "1")

    assert not sendgrid_signature_valid(load_sendgrid_public_key(other), b"[]", signature, "1")


def test_sendgrid_public_key_may_be_pasted_as_pem(
    key_pair: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    private, public = key_pair
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    assert (
        load_sendgrid_public_key(pem.decode()).public_numbers()
        == load_sendgrid_public_key(public).public_numbers()
    )


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("not base64 at all", id="not-base64"),
        pytest.param(base64.b64encode(b"not der").decode(), id="not-der"),
        pytest.param(
            public_key_base64(ec.generate_private_key(ec.SECP384R1())),  # type: ignore[arg-type]
            id="wrong-curve",
        ),
    ],
)
def test_sendgrid_unusable_keys_are_refused(encoded: str) -> None:
    with pytest.raises(InvalidKeyError):
        load_sendgrid_public_key(encoded)


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        pytest.param(str(int(NOW)), True, id="now"),
        pytest.param(str(int(NOW) - 600), True, id="10-minutes-old"),
        pytest.param(str(int(NOW) + 600), True, id="10-minutes-ahead"),
        pytest.param(str(int(NOW) - 601), False, id="just-over-10-minutes-old"),
        pytest.param(str(int(NOW) + 601), False, id="just-over-10-minutes-ahead"),
        pytest.param(str(int(NOW) - 11 * 60), False, id="11-minutes-old"),
        pytest.param("0", False, id="epoch"),
        pytest.param(" 1700000000 ", True, id="padded"),
        pytest.param("1700000000.0", False, id="not-an-integer"),
        pytest.param("-1700000000", False, id="negative"),
        pytest.param("\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
                     False, id="non-ascii-digits"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="missing"),
    ],
)  # fmt: skip
def test_sendgrid_timestamps_more_than_10_minutes_off_are_stale(
    timestamp: str | None, fresh: bool
) -> None:
    assert sendgrid_timestamp_fresh(timestamp, now=NOW) is fresh
