"""What goes into the queue and what comes out of it.

`traceparent` is the W3C trace context of the message's API request while
tracing is on (`postline.tracing`), else "". Only entries queued by the
accept path carry one: an entry queued again later (a retry, a key's next
message, the reconciler) has none, and the worker starts a new trace.
"""

from __future__ import annotations

from dataclasses import dataclass

from postline.domain.channels import Channel


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A message to put at the back of its ordering key's FIFO."""

    message_id: str
    channel: Channel
    ordering_key: str
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry read by a worker."""

    stream: str
    entry_id: str
    message_id: str
    traceparent: str = ""
