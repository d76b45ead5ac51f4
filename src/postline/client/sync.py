"""`Client`: the blocking client."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from postline.client import calls
from postline.client.calls import Call, MessageId
from postline.client.models import BatchItem, Event, Message
from postline.client.retrying import Attempts, RetryPolicy

T = TypeVar("T")


class Client:
    """Postline's HTTP API, blocking. Use it as a context manager or `close()` it.

    `retries` is how many times a call is tried again after a 503, a 429 or
    a connection failure (see `postline.client.retrying`); `timeout` is in
    seconds, for each try. `transport` replaces httpx's (a test's
    `httpx.MockTransport`, a proxy).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._policy = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait)
        options = calls.http_options(base_url, api_key, timeout)
        self._http = httpx.Client(**options, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, message: Mapping[str, Any], idempotency_key: str | None = None) -> Message:
        """Sends one message (a send body, SPEC 3). Without a key, one is drawn
        for this call, so its own retries can never send the message twice."""
        return self._run(calls.send(message, idempotency_key))

    def send_batch(self, messages: Sequence[Mapping[str, Any]]) -> builtins.list[BatchItem]:
        """Sends up to 1000 messages; each result says accepted (`id`) or why not (`error`)."""
        return self._run(calls.send_batch(messages))

    def get(self, message_id: MessageId) -> Message:
        return self._run(calls.get(message_id))

    def events(self, message_id: MessageId) -> builtins.list[Event]:
        """The message's status history, oldest first."""
        return self._run(calls.events(message_id))

    def cancel(self, message_id: MessageId) -> Message:
        """Cancels a scheduled, pending or retrying message; `Conflict` otherwise."""
        return self._run(calls.cancel(message_id))

    def retry(self, message_id: MessageId) -> Message:
        """Queues a failed message again with a fresh budget; `Conflict` otherwise."""
        return self._run(calls.retry(message_id))

    def list(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        to: str | None = None,
        ordering_key: str | None = None,
        limit: int = 100,
    ) -> Iterator[Message]:
        """Messages newest first, fetched `limit` at a time as the iteration goes."""
        filters = {"status": status, "type": type, "to": to, "ordering_key": ordering_key}
        cursor: str | None = None
        while True:
            page = self._run(calls.page(filters, limit=limit, cursor=cursor))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _run(self, call: Call[T]) -> T:
        request = call.request(self._http)
        attempts = Attempts(
            self._policy, replayable=call.replayable, keyed=call.idempotency_key is not None
        )
        wait: float | None
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as error:
                wait = attempts.after_error(error)
            else:
                wait = attempts.after_answer(response)
                if wait is None:
                    return call.finish(response)
            time.sleep(wait)
