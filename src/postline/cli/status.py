"""`postline status` and the live-worker check behind `postline worker --check`.

Both read the operations numbers the API's `/api/v1/stats` serves; heavy
imports (asyncpg, redis, rich) wait until a command runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from postline.cli.config import load_settings, option

if TYPE_CHECKING:
    from postline.settings import Settings


@click.command()
@option("--json", is_flag=True, help="Print the /api/v1/stats JSON instead of tables.")
def status(json: bool) -> None:
    """Show queues, messages per status, live workers and throughput (needs
    DATABASE_URL and REDIS_URL)."""
    import orjson
    from rich.console import Console

    from postline import ops

    settings = load_settings()
    try:
        stats = asyncio.run(ops.fetch_stats(settings))
    except ops.DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if json:
        click.echo(orjson.dumps(stats.public(), option=orjson.OPT_INDENT_2).decode())
        return
    # Stream and worker names are data, not rich markup or :emoji: codes.
    ops.print_status(stats, Console(markup=False, emoji=False, highlight=False))


def check_workers(settings: Settings) -> int:
    """Prints the live workers; returns the exit code (0 when there is at least one)."""
    from postline import ops

    try:
        workers = asyncio.run(ops.fetch_workers(settings))
    except ops.DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if not workers:
        click.echo("no live worker heartbeat found", err=True)
        return 1
    for worker in workers:
        click.echo(
            f"{worker.name}\tlast heartbeat {worker.last_heartbeat}\tin flight {worker.inflight}"
        )
    return 0
