"""Listing messages: filters, newest first, keyset pages on `seq` (no OFFSET).

A cursor is the `seq` of the last message of the previous page, so pages
stay stable while new messages arrive: new ones have higher `seq` and only
ever appear on a first page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from postline.domain.message import Message
from postline.store.rows import MESSAGE_COLUMNS, message_of


class BadCursor(ValueError):
    """The cursor was not made by this API."""


CURSOR_PATTERN = r"^[0-9]{1,18}$"


def encode_cursor(seq: int) -> str:
    """The cursor is the last seq seen, in decimal: simple to document and to validate."""
    return str(seq)


def decode_cursor(cursor: str) -> int:
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise BadCursor("cursor is not valid")
    return int(cursor)


def keyset_page(
    select: str,
    equal: Sequence[tuple[str, Any]],
    *,
    limit: int,
    before_seq: int | None,
    where: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """`select` (`SELECT ... FROM t`, whose rows have `seq`) with a WHERE holding
    the fixed clauses `where` and only the filters given (`(expression, value)`,
    None: not given), newest first, one row more than `limit` (so the caller
    knows whether a next page exists), and its arguments."""
    clauses: list[str] = list(where)
    args: list[Any] = []
    for expression, value in equal:
        if value is not None:
            args.append(value)
            clauses.append(f"{expression} = ${len(args)}")
    if before_seq is not None:
        args.append(before_seq)
        clauses.append(f"seq < ${len(args)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit + 1)
    return f"{select} {where} ORDER BY seq DESC LIMIT ${len(args)}", args


def next_seq(rows: Sequence[asyncpg.Record], limit: int) -> int | None:
    """The seq a next page continues after, when `rows` (limit + 1 asked) has one."""
    return int(rows[limit - 1]["seq"]) if len(rows) > limit else None


@dataclass(frozen=True, slots=True)
class Filters:
    status: str | None = None
    type: str | None = None
    to: str | None = None  # in `domain.addresses.recipient` form
    ordering_key: str | None = None


class MessageListing:
    """Pages of the messages table, newest first."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def page(
        self, filters: Filters, *, limit: int, before_seq: int | None
    ) -> tuple[list[Message], int | None]:
        """One page, and the seq to continue after (None on the last page).

        The statement holds only the filters given, so each combination gets a
        plan that uses its own index ((status|type|recipient|ordering_key,
        seq)); the recipient is `message_recipient`, the expression the
        migration indexed.
        """
        sql, args = keyset_page(
            f"SELECT {MESSAGE_COLUMNS} FROM messages",
            (
                ("status", filters.status),
                ("type", filters.type),
                ("message_recipient(type, to_addr)", filters.to),
                ("ordering_key", filters.ordering_key),
            ),
            limit=limit,
            before_seq=before_seq,
        )
        rows = await self.pool.fetch(sql, *args)
        messages = [message_of(r) for r in rows[:limit]]
        return messages, next_seq(rows, limit)
