"""Hostile input, table-driven: each gets the right 4xx, and nothing is stored or queued.

Legitimate odd text (emoji, right-to-left scripts, quotes, SQL look-alikes)
is stored and sent byte for byte.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests.support.harness import (
    running_worker,
    wait_for,
)

SMS = {"from": "+15551234567", "to": "+15559876543", "type": "sms", "body": "Test"}
MAIL = {"from": "a@example.com", "to": "b@example.com", "type": "email", "subject": "s",
        "body": "x"}  # fmt: skip


def j(value: Any) -> bytes:
    return orjson.dumps(value)


def attachment(**fields: str) -> dict[str, str]:
    return {"filename": "a.txt", "content_type": "text/plain", "content": "eA==", **fields}


def raw_sms(extra: bytes) -> bytes:
    """A valid sms body with one more member written as raw JSON text."""
    return j(SMS)[:-1] + b", " + extra + b"}"


def nested(levels: int) -> bytes:
    """An object whose value nests `levels` levels of arrays: {"a": [[...]]}."""
    return b'{"a": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


# (raw body, expected status)
HOSTILE: list[Any] = [
    # malformed JSON
    pytest.param(b"", 422, id="empty-body"),
    pytest.param(b'{"from": "+15551234567",}', 422, id="trailing-comma"),
    pytest.param(b"{'from': '+15551234567'}", 422, id="single-quotes"),
    pytest.param(b'{"body": NaN}', 422, id="nan"),
    pytest.param(b"[]", 422, id="top-level-array"),
    pytest.param(b'"sms"', 422, id="top-level-string"),
    pytest.param(b"\xff\xfe{}", 422, id="not-utf8"),
    pytest.param(b'{"from": "+15551234567", "to": "+15559876543", "type": "sms", '
                 b'"body": "\\ud800"}', 422, id="lone-surrogate"),
    # not plain JSON, in otherwise valid sends (SPEC 3: "All bodies are JSON")
    pytest.param(raw_sms(b'"metadata": {"a": NaN}'), 422, id="metadata-nan"),
    pytest.param(raw_sms(b'"metadata": {"a": Infinity}'), 422, id="metadata-infinity"),
    pytest.param(raw_sms(b'"metadata": {"a": -Infinity}'), 422, id="metadata-minus-infinity"),
    pytest.param(raw_sms(b'"metadata": {"a": 1e999}'), 422, id="metadata-number-overflows"),
    pytest.param(raw_sms(b'"metadata": {"\\ud800": 1}'), 422, id="metadata-key-lone-surrogate"),
    pytest.param(raw_sms(b'"metadata": {"a": "\\udc00x"}'), 422, id="metadata-lone-low-surrogate"),
    pytest.param(raw_sms(b'"metadata": ' + nested(32)), 422, id="nesting-33-levels"),
    pytest.param(raw_sms(b'"metadata": ' + nested(5000)), 422, id="nesting-5000-levels"),
    # wrong types
    pytest.param(j({**SMS, "body": 42}), 422, id="body-number"),
    pytest.param(j({**SMS, "to": ["+15559876543"]}), 422, id="to-list"),
    pytest.param(j({**SMS, "attachments": {"url": "https://x.org"}}), 422, id="attachments-dict"),
    pytest.param(j({**SMS, "metadata": ["a"]}), 422, id="metadata-list"),
    pytest.param(j({**SMS, "send_at": "tomorrow"}), 422, id="send-at-words"),
    pytest.param(j({**SMS, "send_at": "2024-13-45T25:61:00Z"}), 422, id="send-at-impossible"),
    pytest.param(j({**SMS, "type": None}), 422, id="type-null"),
    pytest.param(j({k: v for k, v in SMS.items() if k != "from"}), 422, id="from-missing"),
    pytest.param(j({k: v for k, v in SMS.items() if k != "to"}), 422, id="to-missing"),
    # bad E.164
    pytest.param(j({**SMS, "to": "+"}), 422, id="e164-plus-only"),
    pytest.param(j({**SMS, "to": "+1 555 987 6543"}), 422, id="e164-spaces"),
    pytest.param(j({**SMS, "to": "+1555987654312345"}), 422, id="e164-16-digits"),
    pytest.param(j({**SMS, "to": "++15559876543"}), 422, id="e164-double-plus"),
    pytest.param(j({**SMS, "to": "+1555abc6543"}), 422, id="e164-letters"),
    pytest.param(j({**SMS, "to": "+١٥٥٥٩٨٧٦٥٤٣"}), 422, id="e164-arabic-digits"),
    pytest.param(j({**SMS, "to": "+15559876543' OR '1'='1"}), 422, id="e164-sql-injection"),
    # bad email addresses
    pytest.param(j({**MAIL, "to": "a@"}), 422, id="email-no-domain"),
    pytest.param(j({**MAIL, "to": "@b.com"}), 422, id="email-no-local"),
    pytest.param(j({**MAIL, "to": "a@b@c.com"}), 422, id="email-two-ats"),
    pytest.param(j({**MAIL, "to": "Name <a@b.com"}), 422, id="email-unclosed-angle"),
    pytest.param(j({**MAIL, "to": "b@example.com\r\nBcc: x@evil.com"}), 422, id="email-header-inj"),
    pytest.param(j({**MAIL, "from": "<script>@x.com"}), 422, id="email-script"),
    pytest.param(j({**MAIL, "from": "Evil\r\nBcc: x@evil.com <a@example.com>"}), 422,
                 id="display-name-header-injection"),
    pytest.param(j({**MAIL, "to": "Bob\nX-Spam: yes <b@example.com>"}), 422,
                 id="display-name-lf"),
    pytest.param(j({**MAIL, "to": "Bo\u0000b <b@example.com>"}), 422, id="display-name-nul"),
    pytest.param(j({**MAIL, "from": "Bo\x1bb <a@example.com>"}), 422, id="display-name-escape"),
    pytest.param(j({**MAIL, "to": "Bob\u2028Bcc: x <b@example.com>"}), 422,
                 id="display-name-line-separator"),
    pytest.param(j({**MAIL, "to": "Bob, x@evil.com <b@example.com>"}), 422,
                 id="display-name-hides-another-address"),
    pytest.param(j({**MAIL, "attachments": [attachment(content_type="text/plain\u0000")]}), 422,
                 id="attachment-type-nul"),
    pytest.param(j({**MAIL, "attachments": [attachment(content_type="text/plain\r\nX: y")]}),
                 422, id="attachment-type-crlf"),
    pytest.param(j({**MAIL, "attachments": [attachment(content_type="plain")]}), 422,
                 id="attachment-type-not-a-media-type"),
    pytest.param(j({**MAIL, "attachments": [attachment(filename="a\u0000.txt")]}), 422,
                 id="attachment-filename-nul"),
    pytest.param(j({**MAIL, "attachments": [attachment(filename="a.txt\r\nX: y")]}), 422,
                 id="attachment-filename-crlf"),
    pytest.param(j({**MAIL, "attachments": [attachment(filename="a" * 256)]}), 422,
                 id="attachment-filename-256"),
    pytest.param(j({**SMS, "send_at": "0001-01-01T00:00:00+01:00"}), 422,
                 id="send-at-before-year-1-in-utc"),
    pytest.param(j({**SMS, "send_at": "9999-12-31T23:00:00-02:00"}), 422,
                 id="send-at-after-year-9999-in-utc"),
    pytest.param(j({**SMS, "ordering_key": "key\nother"}), 422, id="ordering-key-newline"),
    pytest.param(j({**SMS, "ordering_key": "key\tother"}), 422, id="ordering-key-tab"),
    # oversize fields
    pytest.param(j({**MAIL, "subject": "s" * 999}), 422, id="subject-999"),
    pytest.param(j({**MAIL, "body": "x" * 1_000_001}), 422, id="email-body-over-1mb"),
    pytest.param(j({**MAIL, "body": "é" * 500_001}), 422, id="email-body-1mb-in-utf8"),
    pytest.param(j({**SMS, "body": "😀" * 1601}), 422, id="sms-1601-code-points"),
    pytest.param(j({**SMS, "ordering_key": "k" * 257}), 422, id="ordering-key-257"),
    pytest.param(j({**SMS, "metadata": {"k": "é" * 2100}}), 422, id="metadata-over-4kb-utf8"),
    pytest.param(j({**SMS, "body": "x" * (2 * 1024 * 1024)}), 413, id="request-over-2mb"),
    # control characters and odd unicode where it does not belong
    pytest.param(j({**SMS, "body": "bell\x07"}), 422, id="body-bell"),
    pytest.param(j({**SMS, "body": "\x1b[31mred"}), 422, id="body-ansi-escape"),
    pytest.param(j({**SMS, "body": "next\u0085line"}), 422, id="body-c1-control"),
    pytest.param(j({**SMS, "metadata": {"k": "nul\u0000"}}), 422, id="metadata-nul"),
    pytest.param(j({**SMS, "ordering_key": "key\x00"}), 422, id="ordering-key-nul"),
    # channels and attachments
    pytest.param(j({**SMS, "type": "SMS"}), 422, id="channel-upper-case"),
    pytest.param(j({**SMS, "type": "sms "}), 422, id="channel-trailing-space"),
    pytest.param(j({**SMS, "type": "telegram"}), 422, id="channel-unknown"),
    pytest.param(j({**SMS, "type": "mms"}), 422, id="mms-no-attachments"),
    pytest.param(j({**SMS, "type": "mms", "attachments": ["javascript:alert(1)"]}), 422,
                 id="mms-javascript-url"),
    pytest.param(j({**SMS, "type": "mms", "attachments": ["file:///etc/passwd"]}), 422,
                 id="mms-file-url"),
    pytest.param(j({**SMS, "type": "mms", "attachments": ["https://x.org/a b.png"]}), 422,
                 id="mms-url-with-space"),
    pytest.param(j({**SMS, "type": "whatsapp", "attachments": ["https://x.org/1",
                                                               "https://x.org/2"]}), 422,
                 id="whatsapp-two-urls"),
    pytest.param(j({**SMS, "callback_url": "javascript:alert(1)"}), 422, id="callback-javascript"),
    pytest.param(j({**SMS, "extra": "field"}), 422, id="unknown-field"),
]  # fmt: skip


def test_the_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize(("raw", "status"), HOSTILE)
async def test_hostile_input_is_refused_and_nothing_is_kept(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any, raw: bytes, status: int
) -> None:
    answer = await api.post(
        "/api/v1/messages/send", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("validation_error", "payload_too_large")
    assert isinstance(error["message"], str) and error["message"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    for channel in ("sms", "mms", "whatsapp", "email"):
        assert await redis.xlen(f"message_queue:{channel}") == 0
    assert await redis.hlen("postline:queued") == 0


NOT_PLAIN_JSON = [
    pytest.param(b'"a": NaN', id="nan"),
    pytest.param(b'"a": -Infinity', id="minus-infinity"),
    pytest.param(b'"a": "\\ud800"', id="lone-surrogate"),
    pytest.param(b'"a": ' + b"[" * 40 + b"]" * 40, id="nesting-44-levels"),
]


@pytest.mark.parametrize("member", NOT_PLAIN_JSON)
async def test_a_batch_with_an_item_that_is_not_plain_json_is_refused_whole(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any, member: bytes
) -> None:
    raw = b'{"messages": [' + j(SMS) + b", " + j(SMS)[:-1] + b', "metadata": {' + member + b"}}]}"
    answer = await api.post(
        "/api/v1/messages/batch", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "validation_error"
    assert answer.json()["error"]["details"][0]["type"] == "json_invalid"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await redis.xlen("message_queue:sms") == 0


async def test_nesting_up_to_the_limit_is_stored_as_sent(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    raw = raw_sms(b'"metadata": ' + nested(31))  # 32 levels, counting the body itself
    answer = await api.post(
        "/api/v1/messages/send", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 202, answer.text
    stored = await pool.fetchval("SELECT metadata FROM messages")
    assert stored == orjson.loads(nested(31))


@pytest.mark.parametrize(
    "header",
    [{"content-type": "text/plain"}, {"content-type": "application/xml"}, {}],
    ids=["text", "xml", "none"],
)
async def test_non_json_content_types_are_415(
    api: httpx.AsyncClient, pool: asyncpg.Pool, header: dict[str, str]
) -> None:
    answer = await api.post("/api/v1/messages/send", content=j(SMS), headers=header)
    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


LEGIT = [
    "Emoji 🎉👍🏽👨‍👩‍👧 ok",
    "עברית مرحبا بالعالم RTL",
    "Quotes \"double\" 'single' `back` \\ backslash",
    "'; DROP TABLE messages; --",
    "<script>alert('x')</script>",
    "Combining é (e\u0301) and zero\u200bwidth",
    "Tabs\tand\nnew lines\r\n",
]


async def test_odd_but_legitimate_text_is_kept_and_sent_byte_for_byte(
    api: httpx.AsyncClient, settings: Any, sim: Any, pool: asyncpg.Pool
) -> None:
    ids = {}
    for i, body in enumerate(LEGIT):
        answer = await api.post("/api/v1/messages/send", json={**SMS, "to": f"+155500000{i:02d}",
                                                                "body": body})  # fmt: skip
        assert answer.status_code == 202, answer.text
        assert answer.json()["body"] == body
        ids[f"+155500000{i:02d}"] = body
    async with running_worker(settings):

        async def all_sent() -> bool:
            count = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'")
            return bool(count == len(LEGIT))

        await wait_for(all_sent, timeout=15, what="every message to be sent")
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        received = (await control.get("/_sim/requests")).json()["requests"]
    assert {r["to"]: r["body"] for r in received} == ids
    stored = await pool.fetch("SELECT to_addr, body FROM messages")
    assert {r["to_addr"]: r["body"] for r in stored} == ids


async def raw_send(base_url: str, header_lines: bytes, body: bytes) -> tuple[int, Any]:
    """POSTs a send with header bytes as given (httpx refuses to send some of them)."""
    host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /api/v1/messages/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), header_lines, body)
    )
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(payload)


@pytest.mark.parametrize(
    "key",
    [b"", b"   ", b"\t \t", b"k" * 256, b"a\x85b", b"a\xa0\x9fb"],
    ids=["empty", "spaces", "tabs", "256-chars", "c1-control", "nbsp-and-c1"],
)
async def test_a_bad_idempotency_key_is_400_and_nothing_is_kept(
    api: httpx.AsyncClient, pool: asyncpg.Pool, redis: Any, key: bytes
) -> None:
    status, answer = await raw_send(str(api.base_url), b"Idempotency-Key: " + key + b"\r\n", j(SMS))
    assert status == 400, answer
    error = answer["error"]
    assert error["code"] == "invalid_idempotency_key"
    assert "Idempotency-Key" in error["message"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert await redis.xlen("message_queue:sms") == 0


async def test_an_idempotency_key_of_255_characters_with_inner_spaces_is_fine(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    key = "booking 42 " + "k" * 244
    first = await api.post("/api/v1/messages/send", json=SMS, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    again = await api.post("/api/v1/messages/send", json=SMS, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert await pool.fetchval("SELECT key FROM idempotency_keys") == key
