"""`postline status` and the live-worker check behind `postline worker --check`.

Both read the operations numbers the API's `/api/v1/stats` serves
(`postline.services.stats`); the terminal view of them is drawn here. Heavy
imports (asyncpg, redis, rich) wait until a command runs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from postline.cli.config import data_dir_option, load_settings, option

if TYPE_CHECKING:
    from rich.console import Console

    from postline.services.stats import Stats
    from postline.settings import Settings


@click.command()
@option("--json", is_flag=True, help="Print the /api/v1/stats JSON instead of tables.")
@data_dir_option()
def status(json: bool, data_dir: Path) -> None:
    """Show queues, messages per status, live workers and throughput (needs
    DATABASE_URL and REDIS_URL, or a `postline dev`)."""
    import orjson
    from rich.console import Console

    from postline.services import stats as reading

    settings = load_settings(data_dir=data_dir)
    try:
        stats = asyncio.run(reading.fetch_stats(settings))
    except reading.DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if json:
        click.echo(orjson.dumps(stats.public(), option=orjson.OPT_INDENT_2).decode())
        return
    # Stream and worker names are data, not rich markup or :emoji: codes.
    print_status(stats, Console(markup=False, emoji=False, highlight=False))


def check_workers(settings: Settings) -> int:
    """Prints the live workers; returns the exit code (0 when there is at least one)."""
    from postline.services.stats import DependencyUnavailable, fetch_workers

    try:
        workers = asyncio.run(fetch_workers(settings))
    except DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if not workers:
        click.echo("no live worker heartbeat found", err=True)
        return 1
    for worker in workers:
        click.echo(
            f"{worker.name}\tlast heartbeat {worker.last_heartbeat}\tin flight {worker.inflight}"
        )
    return 0


def _age(stamp: str, now: datetime) -> str:
    try:
        seconds = (now - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return "?"
    return f"{max(seconds, 0):.1f}s ago"


#: The busiest senders shown; `--json` has them all.
PACED_ROWS = 20


def print_status(stats: Stats, console: Console, *, now: datetime | None = None) -> None:
    """The terminal view: queues, messages per status, workers, throughput,
    routes, and the senders whose messages wait for their pace."""
    from rich.table import Table

    moment = now or datetime.now(UTC)
    queues = Table(title="Queues", title_justify="left")
    queues.add_column("stream")
    queues.add_column("depth", justify="right")
    queues.add_column("pending", justify="right")
    for stream, numbers in stats.queues.items():
        queues.add_row(stream, str(numbers["depth"]), str(numbers["pending"]))

    messages = Table(title="Messages", title_justify="left")
    messages.add_column("status")
    messages.add_column("count", justify="right")
    for status, count in stats.counts.counts.items():
        messages.add_row(status, f"{count:,}")

    workers = Table(title=f"Workers ({len(stats.workers)} live)", title_justify="left")
    workers.add_column("name")
    workers.add_column("last heartbeat")
    workers.add_column("in flight", justify="right")
    for worker in stats.workers:
        beat = f"{worker.last_heartbeat} ({_age(worker.last_heartbeat, moment)})"
        capacity = f"/{worker.concurrency}" if worker.concurrency is not None else ""
        workers.add_row(worker.name, beat, f"{worker.inflight}{capacity}")

    console.print(queues)
    console.print(messages)
    if stats.counts.estimated:
        console.print("(finished statuses estimated from table statistics)")
    if stats.workers:
        console.print(workers)
    else:
        console.print("Workers: none live (start one with `postline worker`)")
    rates = stats.throughput
    console.print(
        f"Throughput (last {rates.window}s): {rates.sent_per_second}/s sent, "
        f"{rates.failed_per_second}/s failed"
    )
    _print_sending(stats, console)


def _print_sending(stats: Stats, console: Console) -> None:
    """Routes, suppressions and paced senders: what shapes where and when messages go."""
    from rich.table import Table

    from postline.services.stats import suppression_summary

    routes = Table(title="Routes", title_justify="left")
    for column in ("route", "circuit", "attempts", "failed"):
        routes.add_column(column, justify="left" if column in ("route", "circuit") else "right")
    for name, route in stats.routes.items():
        routes.add_row(name, route.state, str(route.attempts), str(route.failed))

    if stats.routes:
        console.print(routes)
    if stats.suppressions:
        summary = suppression_summary(stats.suppressions)
        parts = ", ".join(f"{n:,} {reason}" for reason, n in summary["by_reason"].items())
        console.print(f"Suppressed: {summary['total']:,} ({parts})")
    if stats.pacing:
        paced = Table(title="Waiting for their pace", title_justify="left")
        for column in ("sender", "class", "waiting", "last slot in"):
            paced.add_column(
                column, justify="right" if column in ("waiting", "last slot in") else "left"
            )
        for row in stats.pacing[:PACED_ROWS]:
            paced.add_row(
                row.sender, row.sender_class, f"{row.waiting:,}", f"{row.wait_seconds:.1f}s"
            )
        console.print(paced)
