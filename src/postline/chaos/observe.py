"""What Postline says of itself during a feature campaign: `/api/v1/stats`, sampled.

The verdict never rests on this (the checker reads only the client's,
provider's and fault logs); it shows that a feature did its work while the
faults hit: senders waiting for their pacing slots, the routes' circuits
moving. A thread reads the stats every `EVERY_SECONDS` and appends the
parts the features show to `stats.jsonl`; a reading that fails (the API or
a server it needs is down) is a line with its error, so a gap is visible.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from postline.chaos.records import write_line

STATS_PATH = "/api/v1/stats"
EVERY_SECONDS = 1.0  # a 429 hold lasts a second: a slower reading could miss every one
TIMEOUT_SECONDS = 2.0


def sample_of(stats: dict[str, Any], at: float) -> dict[str, Any]:
    """The line kept of one `/api/v1/stats` body: paced senders, circuit states."""
    routes = stats.get("routes") or {}
    return {
        "at": at,
        "pacing": (stats.get("pacing") or {}).get("senders", []),
        "routes": {name: route.get("state") for name, route in routes.items()},
    }


class StatsSampler(threading.Thread):
    """Reads the API's stats every `every` seconds until `stop`."""

    def __init__(self, api_url: str, path: Path, every: float = EVERY_SECONDS) -> None:
        super().__init__(name="stats-sampler", daemon=True)
        self._url = api_url + STATS_PATH
        self._path = path
        self._every = every
        self._stopping = threading.Event()

    def run(self) -> None:
        with self._path.open("ab") as log:
            while not self._stopping.wait(self._every):
                write_line(log, self._read())
                log.flush()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=self._every + TIMEOUT_SECONDS + 5)

    def _read(self) -> dict[str, Any]:
        at = time.time()
        try:
            with urllib.request.urlopen(  # noqa: S310 - our own loopback API
                self._url, timeout=TIMEOUT_SECONDS
            ) as answer:
                return sample_of(orjson.loads(answer.read()), at)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            # An HTTPError (503: a server down) is a URLError too.
            return {"at": at, "error": f"{type(exc).__name__}: {exc}"}
