"""Per-recipient scripted answers, for deterministic tests.

A script is a queue of answers for one recipient, keyed as the provider sees
it (`+1555...`, `whatsapp:+1555...` or an email address). Each provider
request to that recipient pops the next item; once the queue is empty the
recipient gets the normal behaviour again (including the random knobs).

Items come from `POST /_sim/scripts` as bare statuses (`500`) or objects:
`{"status": 429, "retry_after": 2}`, `{"status": 400, "code": 21211,
"message": "..."}`, `{"status": 201, "latency_ms": 300}`,
`{"status": 201, "receipt": "undelivered"}`.
Any 2xx item means "answer normally" (validation still applies), and may
choose that message's delivery receipt (`receipt`, one of
`RECEIPT_OUTCOMES`, instead of the configured `delivery_outcome`); `code`
only shows in Twilio answers, since SendGrid errors carry none;
`retry_after` adds a Retry-After header to any error and defaults to the
configured one on 429s.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from postline.simulator.config import RECEIPT_OUTCOMES


class ScriptError(ValueError):
    """A script request was malformed."""


@dataclass(frozen=True, slots=True)
class ScriptItem:
    """One scripted answer. A 2xx status means "answer normally"."""

    status: int
    code: int | None = None
    message: str | None = None
    retry_after: int | None = None
    latency_ms: float | None = None
    receipt: str | None = None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


_ITEM_KEYS = frozenset({"status", "code", "message", "retry_after", "latency_ms", "receipt"})


def _plain_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_item(raw: object, index: int) -> ScriptItem:
    """Turn one JSON item (int or object) into a `ScriptItem`."""
    where = f"responses[{index}]"
    if _plain_int(raw):
        raw = {"status": raw}
    if not isinstance(raw, dict):
        raise ScriptError(f"{where} must be a status code or an object")
    unknown = sorted(str(key) for key in raw if key not in _ITEM_KEYS)
    if unknown:
        raise ScriptError(f"{where} has unknown keys: {', '.join(unknown)}")
    status = raw.get("status")
    if not _plain_int(status) or not 200 <= status <= 599:
        raise ScriptError(f"{where}.status must be an HTTP status between 200 and 599")
    code = raw.get("code")
    if code is not None and not _plain_int(code):
        raise ScriptError(f"{where}.code must be an integer")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise ScriptError(f"{where}.message must be a string")
    retry_after = raw.get("retry_after")
    if retry_after is not None and (not _plain_int(retry_after) or retry_after < 0):
        # Retry-After is whole seconds on the wire, so fractions are refused.
        raise ScriptError(f"{where}.retry_after must be an integer >= 0")
    latency = raw.get("latency_ms")
    if latency is not None and (
        not isinstance(latency, int | float)
        or isinstance(latency, bool)
        or not math.isfinite(latency)
        or latency < 0
    ):
        raise ScriptError(f"{where}.latency_ms must be a number >= 0")
    receipt = raw.get("receipt")
    if receipt is not None and receipt not in RECEIPT_OUTCOMES:
        raise ScriptError(f"{where}.receipt must be one of {', '.join(RECEIPT_OUTCOMES)}")
    if receipt is not None and not 200 <= status < 300:
        raise ScriptError(f"{where}.receipt goes with a 2xx status: only accepted sends get one")
    return ScriptItem(status, code, message, retry_after, latency, receipt)


def parse_script(body: object) -> tuple[str, list[ScriptItem]]:
    """Validate a `POST /_sim/scripts` body into (recipient key, items)."""
    if not isinstance(body, dict):
        raise ScriptError("the body must be a JSON object")
    unknown = sorted(str(key) for key in body if key not in {"to", "responses"})
    if unknown:
        raise ScriptError(f"unknown keys: {', '.join(unknown)}")
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        raise ScriptError("'to' must be a non-empty string")
    responses = body.get("responses")
    if not isinstance(responses, list) or not responses:
        raise ScriptError("'responses' must be a non-empty list")
    return recipient_key(to), [parse_item(raw, i) for i, raw in enumerate(responses)]


def recipient_key(to: str) -> str:
    """Normalise a recipient so script lookups match what providers receive.

    Email addresses compare case-insensitively (as mailboxes do in practice);
    phone numbers and channel addresses compare exactly.
    """
    to = to.strip()
    return to.lower() if "@" in to else to


class ScriptBook:
    """The scripts of all recipients; `pop` is on the request path, so it is O(1)."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[ScriptItem]] = {}

    def __bool__(self) -> bool:
        return bool(self._queues)

    def set(self, key: str, items: list[ScriptItem]) -> None:
        """Replace the recipient's script (a second POST does not append)."""
        self._queues[key] = deque(items)

    def pop(self, to: str | None) -> ScriptItem | None:
        if not self._queues or to is None:
            return None
        key = recipient_key(to)
        queue = self._queues.get(key)
        if queue is None:
            return None
        item = queue.popleft()
        if not queue:
            del self._queues[key]
        return item

    def clear(self, key: str | None = None) -> int:
        """Drop one recipient's script, or all; returns how many items were dropped."""
        if key is None:
            dropped = sum(len(queue) for queue in self._queues.values())
            self._queues.clear()
            return dropped
        return len(self._queues.pop(key, ()))

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {key: [item.to_dict() for item in queue] for key, queue in self._queues.items()}
