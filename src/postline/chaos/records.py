"""The three logs of a campaign, and how a message is recognised in each.

Invariant: a message is identified only by its body, `chaos <token> <key>
<n>` (`n` counts from 1 within `key`), which the client writes and the
provider's call log repeats; `token` is unique to the campaign, so calls of
any other run are ignored. Nothing here reads Postline's database or API.

All times are Unix seconds (float) from the clock of the one machine the
campaign runs on, so client, provider and fault times compare directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BODY_PREFIX = "chaos"


def message_body(token: str, key: str, n: int) -> str:
    return f"{BODY_PREFIX} {token} {key} {n}"


def parse_body(body: object, token: str) -> tuple[str, int] | None:
    """(key, n) of a body of this campaign, None for anything else."""
    if not isinstance(body, str):
        return None
    parts = body.split(" ")
    if len(parts) != 4 or parts[0] != BODY_PREFIX or parts[1] != token:
        return None
    try:
        return parts[2], int(parts[3])
    except ValueError:
        return None


@dataclass(frozen=True)
class ClientRecord:
    """One send request as the client saw it; `status` None: no answer at all."""

    key: str
    n: int
    sent: float
    answered: float
    status: int | None
    message_id: str | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class ProviderCall:
    """One provider call of a campaign message, from the simulator's call log."""

    key: str
    n: int
    received_at: float
    ended_at: float
    outcome: str
    accepted: bool
    status: int | None = None  # the HTTP status decided (None: the client left first)
    account: str | None = None  # the Twilio account called (None: SendGrid)
    sender: str | None = None  # the message's `from`


@dataclass(frozen=True)
class FaultRecord:
    """A fault between `start` and `end` (equal for an instant one or an observation)."""

    kind: str
    target: str
    start: float
    end: float
    detail: dict[str, Any] = field(default_factory=dict)


def write_line(file: Any, record: ClientRecord | FaultRecord | dict[str, Any]) -> None:
    """Append one record as a JSON line to a binary file."""
    data = record if isinstance(record, dict) else dataclasses.asdict(record)
    file.write(orjson.dumps(data) + b"\n")


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The complete JSON lines of `path`; a torn last line (a killed writer) is skipped."""
    with path.open("rb") as log:
        for line in log:
            if line.endswith(b"\n") and line.strip():
                yield orjson.loads(line)


def client_records(rows: Iterable[dict[str, Any]]) -> list[ClientRecord]:
    return [ClientRecord(**row) for row in rows]


def fault_records(rows: Iterable[dict[str, Any]]) -> list[FaultRecord]:
    return [FaultRecord(**row) for row in rows]


def provider_calls(rows: Iterable[dict[str, Any]], token: str) -> list[ProviderCall]:
    """Calls of this campaign's messages (Twilio `body`, SendGrid `text`)."""
    calls = []
    for row in rows:
        identity = parse_body(row.get("body") or row.get("text"), token)
        if identity is None:
            continue
        calls.append(
            ProviderCall(
                key=identity[0],
                n=identity[1],
                received_at=float(row["received_at"]),
                ended_at=float(row["ended_at"]),
                outcome=str(row["outcome"]),
                accepted=bool(row["accepted"]),
                status=row.get("status"),
                account=row.get("account_sid"),
                sender=row.get("from"),
            )
        )
    return calls
