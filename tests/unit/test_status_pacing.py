"""`postline status` shows the senders waiting for their pace, busiest first."""

from __future__ import annotations

import io

from rich.console import Console

from postline.cli.status import print_status
from postline.queue.pacing import Waiting
from postline.services.stats import Stats
from postline.store.stats import StatusCounts, Throughput


def render(pacing: list[Waiting]) -> str:
    stats = Stats(
        queues={}, counts=StatusCounts({"pending": 3}, False), workers=[],
        throughput=Throughput(0, 0, 60), routes={}, pacing=pacing,
    )  # fmt: skip
    out = io.StringIO()
    print_status(stats, Console(file=out, width=120))
    return out.getvalue()


def test_status_lists_paced_senders_and_says_nothing_while_none_waits() -> None:
    text = render([Waiting("+15551234567", "long_code", 42, 41.5)])
    assert "Waiting for their pace" in text
    assert "+15551234567" in text and "long_code" in text and "41.5s" in text
    assert "Waiting for their pace" not in render([])
