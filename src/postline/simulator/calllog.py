"""A durable JSON-lines log of provider calls: one line per call, when it ends.

Invariant: the line of a call is handed to the operating system (an
unbuffered `write`) before its answer is sent, so every answer a client may
have seen has its line, even if the simulator is killed just after. Lines
are never rewritten; a reader sees a prefix of the calls in the order they
ended. Times are Unix seconds (float) from this machine's clock, so they can
be compared with other logs written on the same machine.

Fields: `seq`, `provider`, `received_at`, `ended_at`, `status` (the HTTP
status the provider decided on; null when the client left first),
`outcome` (see `faults.py`), `accepted`, `answered` (false for a reset and
a client gone), `hung`, `account_sid` (the Twilio account called; null for SendGrid),
`from`, `to`, `body` (Twilio), `subject` and `text` (SendGrid),
`provider_message_id`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIELDS = (
    "seq",
    "provider",
    "received_at",
    "ended_at",
    "status",
    "outcome",
    "accepted",
    "answered",
    "hung",
    "account_sid",
    "from",
    "to",
    "body",
    "subject",
    "text",
    "provider_message_id",
)


class CallLog:
    """Appends call records to a file; opened once, closed with the simulator."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # buffering=0: each record is one write(2), so nothing waits in our memory.
        self._file = path.open("ab", buffering=0)

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps({name: record.get(name) for name in FIELDS})
        self._file.write(line + b"\n")

    def close(self) -> None:
        self._file.close()
