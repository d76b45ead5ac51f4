"""The suppressions table: add, lift, list, and the claim's look-up.

`SUPPRESSED_BY` is the SQL the claim runs per message: the reason of an
active suppression of its recipient (for every sender, or for its own
sender), or NULL. Two primary-key probes, no scan.

An expired row is ignored by the claim and the list, and replaced when the
recipient is suppressed again; nothing else removes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from postline.domain.suppression import (
    ANY_SENDER,
    Reason,
    Source,
    Suppression,
    SuppressionChannel,
)
from postline.store.listing import keyset_page, next_seq

#: SQL: a suppression that has not expired.
_ACTIVE = "(expires_at IS NULL OR expires_at > now())"

#: SQL: the channel a message's suppressions are filed under (MMS shares SMS's number).
CHANNEL_OF = "CASE {m}.type WHEN 'mms' THEN 'sms' ELSE {m}.type END"

#: SQL: the reason `{m}` (a messages row) may not be sent, or NULL.
SUPPRESSED_BY = f"""(
    SELECT s.reason FROM suppressions s
    WHERE s.channel = {CHANNEL_OF}
      AND s.recipient = message_recipient({{m}}.type, {{m}}.to_addr)
      AND s.sender IN ('', message_recipient({{m}}.type, {{m}}.from_addr))
      AND (s.expires_at IS NULL OR s.expires_at > now())
    LIMIT 1)"""

_COLUMNS = "channel, recipient, sender, reason, source, created_at, expires_at"

# A suppression asked for again keeps its first reason and source, and lasts
# as long as the longer of the two (no expiry beats any).
_ADD = f"""
INSERT INTO suppressions (channel, recipient, sender, reason, source, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[])
ON CONFLICT (channel, recipient, sender) DO UPDATE
    SET expires_at = CASE
            WHEN suppressions.expires_at < now() THEN EXCLUDED.expires_at
            WHEN suppressions.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL
            ELSE greatest(suppressions.expires_at, EXCLUDED.expires_at) END,
        reason = CASE WHEN suppressions.expires_at < now()
                      THEN EXCLUDED.reason ELSE suppressions.reason END,
        source = CASE WHEN suppressions.expires_at < now()
                      THEN EXCLUDED.source ELSE suppressions.source END,
        created_at = CASE WHEN suppressions.expires_at < now()
                          THEN now() ELSE suppressions.created_at END
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class SuppressionFilters:
    channel: SuppressionChannel | None = None
    recipient: str | None = None


def _suppression(row: asyncpg.Record) -> Suppression:
    return Suppression(
        channel=SuppressionChannel(row["channel"]),
        recipient=row["recipient"],
        sender=row["sender"],
        reason=Reason(row["reason"]),
        source=Source(row["source"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


class SuppressionStore:
    """Suppressions in PostgreSQL; every statement is idempotent.

    Over a pool, or over a connection whose transaction it then joins.
    """

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    async def add(self, suppressions: Sequence[Suppression]) -> list[Suppression]:
        """Adds (or keeps) each suppression; returns them as stored."""
        if not suppressions:
            return []
        rows = await self.pool.fetch(
            _ADD,
            [s.channel.value for s in suppressions],
            [s.recipient for s in suppressions],
            [s.sender for s in suppressions],
            [s.reason.value for s in suppressions],
            [s.source.value for s in suppressions],
            [s.expires_at for s in suppressions],
        )
        return [_suppression(r) for r in rows]

    async def remove(
        self, channel: SuppressionChannel, recipient: str, *, sender: str | None = ANY_SENDER
    ) -> int:
        """Lifts the suppression of `recipient` for `sender` ('' every sender;
        None: every row of the recipient, whichever sender); returns how many."""
        if sender is None:
            result = await self.pool.execute(
                "DELETE FROM suppressions WHERE channel = $1 AND recipient = $2",
                channel.value,
                recipient,
            )
        else:
            result = await self.pool.execute(
                "DELETE FROM suppressions WHERE channel = $1 AND recipient = $2 AND sender = $3",
                channel.value,
                recipient,
                sender,
            )
        return int(result.split()[-1])

    async def lift_opt_outs(
        self, channel: SuppressionChannel, recipient: str, senders: Sequence[str]
    ) -> int:
        """Lifts the recipient's opt-outs (reason `opt_out` only) for `senders`; how many."""
        result = await self.pool.execute(
            "DELETE FROM suppressions WHERE channel = $1 AND recipient = $2 "
            "AND sender = ANY($3::text[]) AND reason = $4",
            channel.value,
            recipient,
            list(senders),
            Reason.OPT_OUT.value,
        )
        return int(result.split()[-1])

    async def page(
        self, filters: SuppressionFilters, *, limit: int, before_seq: int | None
    ) -> tuple[list[Suppression], int | None]:
        """Active suppressions, newest first, and the seq to continue after."""
        sql, args = keyset_page(
            f"SELECT {_COLUMNS}, seq FROM suppressions",
            (
                ("channel", filters.channel.value if filters.channel else None),
                ("recipient", filters.recipient),
            ),
            limit=limit,
            before_seq=before_seq,
            where=(_ACTIVE,),
        )
        rows = await self.pool.fetch(sql, *args)
        return [_suppression(r) for r in rows[:limit]], next_seq(rows, limit)

    async def counts(self) -> dict[tuple[str, str], int]:
        """Active suppressions per (channel, reason): a small table, counted outright."""
        rows = await self.pool.fetch(
            f"SELECT channel, reason, count(*) AS n FROM suppressions WHERE {_ACTIVE} "
            "GROUP BY channel, reason"
        )
        return {(r["channel"], r["reason"]): int(r["n"]) for r in rows}
