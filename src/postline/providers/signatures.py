"""How the providers sign their webhooks, both ways: check (Postline) and sign (simulator).

Pure functions over bytes and strings, no I/O.

- Twilio: `X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL + each
  POST parameter's name followed by its value, names in sorted order)).
  The URL is the full one Twilio called, query string included. Like
  Twilio's own validators, the URL is tried with and without the scheme's
  default port, since Twilio is not consistent about it.
- SendGrid signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature`
  is base64(DER ECDSA P-256 / SHA-256 signature) over the
  `X-Twilio-Email-Event-Webhook-Timestamp` header value followed by the raw
  body; the verification key is given as base64 of a DER
  SubjectPublicKeyInfo, as SendGrid shows it. The timestamp is Unix
  seconds; one more than `SENDGRID_MAX_SKEW_SECONDS` away from now, either
  way, is refused (SPEC 3.1), so a captured batch cannot be replayed later.

Every comparison is constant-time (HMAC) or done by the ECDSA verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

FormParams = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: How far a signed SendGrid batch's timestamp may be from now, either way.
SENDGRID_MAX_SKEW_SECONDS = 600


class InvalidKeyError(ValueError):
    """A configured key cannot be read (not base64, not DER, not EC P-256)."""


def _pairs(params: FormParams) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, v) for v in value)
        return pairs
    return list(params)


def twilio_signature(auth_token: str, url: str, params: FormParams) -> str:
    """The `X-Twilio-Signature` Twilio would send for a form POST to `url`.

    A repeated parameter contributes each of its values, in sorted order,
    the way Twilio's helper libraries compute it.
    """
    data = url + "".join(name + value for name, value in sorted(_pairs(params)))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """`url` as given, then without or with the scheme's default port."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname
    if default is None or host is None:
        return [url]
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is None:
        other = f"{prefix}{host}:{default}"
    elif port == default:
        other = f"{prefix}{host}"
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


def twilio_signature_valid(
    auth_token: str, url: str, params: FormParams, signature: str | None
) -> bool:
    """True when `signature` is Twilio's for this URL and these form parameters."""
    if not signature or not auth_token:
        return False
    presented = signature.strip().encode()
    pairs = _pairs(params)
    return any(
        hmac.compare_digest(presented, twilio_signature(auth_token, candidate, pairs).encode())
        for candidate in _port_variants(url)
    )


def load_sendgrid_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 of a DER SubjectPublicKeyInfo, EC P-256.

    A PEM block is accepted too, since that is how a key often gets pasted.
    """
    text = encoded.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise InvalidKeyError(f"not a base64 DER (or PEM) public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKeyError("the SendGrid webhook key must be an EC P-256 public key")
    return key


def sendgrid_signature_valid(
    public_key: ec.EllipticCurvePublicKey,
    payload: bytes,
    signature: str | None,
    timestamp: str | None,
) -> bool:
    """True when `signature` is SendGrid's ECDSA signature of `timestamp` + `payload`."""
    if not signature or not timestamp:
        return False
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        public_key.verify(raw, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sendgrid_timestamp_fresh(
    timestamp: str | None, *, now: float, max_skew: float = SENDGRID_MAX_SKEW_SECONDS
) -> bool:
    """True when `timestamp` (Unix seconds) is at most `max_skew` seconds from `now`.

    Either way: a clock ahead of ours gets the same window as one behind.
    Anything but plain ASCII digits is not a timestamp SendGrid sends.
    """
    text = (timestamp or "").strip()
    if not (text.isascii() and text.isdigit()):
        return False
    return abs(now - int(text)) <= max_skew


def sendgrid_sign(private_key: ec.EllipticCurvePrivateKey, payload: bytes, timestamp: str) -> str:
    """The signature header SendGrid would send (the simulator signs with this)."""
    raw = private_key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


def public_key_base64(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key for `private_key`, as SendGrid shows it (base64 DER SPKI)."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()
