"""What goes into the queue and what comes out of it."""

from __future__ import annotations

from dataclasses import dataclass

from postline.domain.channels import Channel


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A message to put at the back of its ordering key's FIFO."""

    message_id: str
    channel: Channel
    ordering_key: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry read by a worker."""

    stream: str
    entry_id: str
    message_id: str
