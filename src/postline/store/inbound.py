"""The inbound_messages table: record one with its effects, and list them.

`record` is one transaction: the inbound message, the suppression change
its keyword asks for, and its `message.received` callback in the outbox.
So a webhook either did all of it or none, and Twilio's retry of a webhook
(the same `MessageSid`) finds the first one stored and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from postline.domain.inbound import (
    Action,
    Effects,
    InboundChannel,
    InboundMessage,
    Media,
    suppression_channel,
)
from postline.store.listing import keyset_page, next_seq
from postline.store.suppressions import SuppressionStore

_COLUMNS = (
    "id, provider_message_id, channel, from_addr, to_addr, body, media, keyword, action, "
    "reply, received_at"
)

_INSERT = f"""
INSERT INTO inbound_messages ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
ON CONFLICT (provider_message_id) DO NOTHING
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class InboundFilters:
    from_addr: str | None = None
    to_addr: str | None = None
    channel: InboundChannel | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The inbound message as stored, and whether this call stored it (False: a replay)."""

    message: InboundMessage
    new: bool


def _media(raw: Any) -> tuple[Media, ...]:
    items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return tuple(Media(url=m["url"], content_type=m.get("content_type")) for m in items)


def _inbound(row: asyncpg.Record) -> InboundMessage:
    return InboundMessage(
        id=row["id"],
        provider_message_id=row["provider_message_id"],
        channel=InboundChannel(row["channel"]),
        from_addr=row["from_addr"],
        to_addr=row["to_addr"],
        body=row["body"],
        media=_media(row["media"]),
        keyword=row["keyword"],
        action=Action(row["action"]),
        reply=row["reply"],
        received_at=row["received_at"],
    )


class InboundStore:
    """Inbound messages in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self,
        message: InboundMessage,
        *,
        effects: Effects,
        callback: tuple[str, bytes] | None = None,
    ) -> Recorded:
        """Stores `message`, applies `effects` and queues `callback` (url, body), once per sid."""
        media = orjson.dumps(
            [{"url": m.url, "content_type": m.content_type} for m in message.media]
        )
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                _INSERT,
                message.id,
                message.provider_message_id,
                message.channel.value,
                message.from_addr,
                message.to_addr,
                message.body,
                media.decode(),
                message.keyword,
                message.action.value,
                message.reply,
                message.received_at,
            )
            if row is None:
                first = await connection.fetchrow(
                    f"SELECT {_COLUMNS} FROM inbound_messages WHERE provider_message_id = $1",
                    message.provider_message_id,
                )
                return Recorded(_inbound(first), new=False)
            suppressions = SuppressionStore(connection)
            if effects.suppress is not None:
                await suppressions.add([effects.suppress])
            if effects.lift_senders:
                await suppressions.lift_opt_outs(
                    suppression_channel(message.channel), message.from_addr, effects.lift_senders
                )
            if callback is not None:
                url, body = callback
                await connection.execute(
                    "INSERT INTO callbacks (inbound_id, status, url, body) "
                    "VALUES ($1, 'received', $2, $3)",
                    message.id,
                    url,
                    body,
                )
            return Recorded(_inbound(row), new=True)

    async def page(
        self, filters: InboundFilters, *, limit: int, before_seq: int | None
    ) -> tuple[list[InboundMessage], int | None]:
        """Inbound messages, newest first, and the seq to continue after."""
        sql, args = keyset_page(
            f"SELECT {_COLUMNS}, seq FROM inbound_messages",
            (
                ("from_addr", filters.from_addr),
                ("to_addr", filters.to_addr),
                ("channel", filters.channel.value if filters.channel else None),
            ),
            limit=limit,
            before_seq=before_seq,
        )
        rows = await self.pool.fetch(sql, *args)
        return [_inbound(r) for r in rows[:limit]], next_seq(rows, limit)
