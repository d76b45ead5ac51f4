"""Each endpoint as a request to make and a reader of its answer, without I/O.

`Client` and `AsyncClient` differ only in how they wait; what they ask and
how they read the answer is written once here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from postline.client.errors import UnexpectedAnswer, error_from
from postline.client.models import BatchItem, Event, Message, Page

T = TypeVar("T")
PREFIX = "/api/v1/messages"
USER_AGENT = "postline-client/0.1"

MessageId = str | uuid.UUID


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its successful answer's JSON."""

    method: str
    path: str
    read: Callable[[Any], T]
    body: Any = None
    params: Mapping[str, str | int] = field(default_factory=dict)
    idempotency_key: str | None = None
    #: sending it again after a timeout does no harm (reads; keyed sends)
    replayable: bool = False

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request, built once so every try sends the same bytes and key."""
        headers = {}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        content = None
        if self.body is not None:
            content = json.dumps(self.body, default=_json_default).encode()
            headers["Content-Type"] = "application/json"
        return http.build_request(
            self.method, self.path, params=self.params, content=content, headers=headers
        )

    def finish(self, response: httpx.Response) -> T:
        """The answer read, or its typed error raised."""
        if not response.is_success:
            raise error_from(response)
        try:
            return self.read(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise UnexpectedAnswer(
                f"{self.method} {self.path}: {response.status_code} answer not understood: {exc!r}"
            ) from exc


def _json_default(value: Any) -> Any:
    # Lets a caller give `send_at` as a datetime.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def http_options(
    base_url: str, api_key: str | None, timeout: float | httpx.Timeout
) -> dict[str, Any]:
    """What both clients give their httpx client."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url, "headers": headers, "timeout": timeout}


def _path(message_id: MessageId, tail: str = "") -> str:
    return f"{PREFIX}/{quote(str(message_id), safe='')}{tail}"


def send(message: Mapping[str, Any], idempotency_key: str | None) -> Call[Message]:
    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    return Call(
        "POST",
        f"{PREFIX}/send",
        Message.from_json,
        body=dict(message),
        idempotency_key=key,
        replayable=True,
    )


def send_batch(messages: Sequence[Mapping[str, Any]]) -> Call[list[BatchItem]]:
    def read(data: Any) -> list[BatchItem]:
        return [BatchItem.from_json(item) for item in data["results"]]

    return Call("POST", f"{PREFIX}/batch", read, body={"messages": [dict(m) for m in messages]})


def get(message_id: MessageId) -> Call[Message]:
    return Call("GET", _path(message_id), Message.from_json, replayable=True)


def events(message_id: MessageId) -> Call[list[Event]]:
    def read(data: Any) -> list[Event]:
        return [Event.from_json(item) for item in data]

    return Call("GET", _path(message_id, "/events"), read, replayable=True)


def cancel(message_id: MessageId) -> Call[Message]:
    return Call("POST", _path(message_id, "/cancel"), Message.from_json)


def retry(message_id: MessageId) -> Call[Message]:
    return Call("POST", _path(message_id, "/retry"), Message.from_json)


def page(filters: Mapping[str, str | None], *, limit: int, cursor: str | None) -> Call[Page]:
    params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
    params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", PREFIX, Page.from_json, params=params, replayable=True)
