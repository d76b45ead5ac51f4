"""Changes a client asks for: cancel a message, retry a failed one.

PostgreSQL decides (the status change is one fenced statement); the queue
side is best effort, for speed only: a cancelled message releases its key,
so the key's next message is queued at once instead of at the reconciler's
next pass, and a retried message is queued instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import uuid

from redis.exceptions import RedisError

from postline import tracing
from postline.domain.message import Change, Message
from postline.logs import message_log
from postline.queue.streams import RedisQueue
from postline.services.accepting import enqueue_item
from postline.services.completion import queue_next_heads
from postline.store.messages import MessageStore

events = message_log()


async def cancel(
    store: MessageStore, queue: RedisQueue, message_id: uuid.UUID
) -> tuple[Change, Message | None]:
    """Cancels a scheduled, pending or retrying message; see `MessageStore.cancel`."""
    change, message = await store.cancel(message_id)
    if change is not Change.DONE or message is None:
        return change, message
    events.info("message.cancelled", message_id=str(message.id), channel=message.type.value)
    # The key is released in PostgreSQL already; what follows only saves the
    # next message a wait for the reconciler if Redis fails here.
    with contextlib.suppress(RedisError, OSError):
        await queue.unschedule(enqueue_item(message))
    await queue_next_heads(store, queue, [message.ordering_key])
    return change, message


async def retry(
    store: MessageStore, queue: RedisQueue, message_id: uuid.UUID
) -> tuple[Change, Message | None]:
    """Moves a failed message back to its key's queue with a fresh budget of attempts."""
    change, message = await store.retry_failed(message_id)
    if change is not Change.DONE or message is None:
        return change, message
    events.info(
        "message.pending",
        message_id=str(message.id),
        channel=message.type.value,
        attempt=message.attempts,
        detail="retry requested",
    )
    with contextlib.suppress(RedisError, OSError):  # else the reconciler queues it
        # Its new attempts join the trace of the request that asked for them.
        await queue.push([enqueue_item(message, tracing.traceparent())])
    return change, message
