"""`postline status` and `postline worker --check`: the operations commands.

`cli.py` calls `register(main)` after defining its own commands. `--check`
extends the existing `worker` command (a health probe for containers and
scripts: `postline worker --check || alert`) instead of adding a second
command name for it; the original `worker` command object is left as it is.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from postline.settings import Settings

CHECK_HELP = (
    "Do not run a worker: exit 0 if at least one live worker heartbeat is seen "
    "in Redis, 1 otherwise."
)


# Heavy imports (asyncpg, redis, rich) wait until a command runs, as in cli.py,
# so `postline --help` stays fast.


def _settings() -> Settings:
    # Imported here: cli.py imports this module, and shares its env/.env fallback.
    from postline.cli import _settings as settings_from_env

    return settings_from_env()


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print the /api/v1/stats JSON instead of tables."
)
def status(as_json: bool) -> None:
    """Show queues, messages per status, live workers and throughput (needs
    DATABASE_URL and REDIS_URL)."""
    import orjson
    from rich.console import Console

    from postline import ops

    settings = _settings()
    try:
        stats = asyncio.run(ops.fetch_stats(settings))
    except ops.DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
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


def _with_check(original: click.Command) -> click.Command:
    callback = original.callback
    assert callback is not None

    def run(check: bool, **options: Any) -> Any:
        if check:
            raise SystemExit(check_workers(_settings()))
        return callback(**options)

    option = click.Option(["--check"], is_flag=True, help=CHECK_HELP)
    return click.Command(
        name=original.name,
        callback=run,
        params=[*original.params, option],
        help=original.help,
        short_help=original.short_help,
        epilog=original.epilog,
        context_settings=original.context_settings,
    )


def register(main: click.Group) -> None:
    """Adds `status` and `worker --check` to `main` (safe to call twice)."""
    if "status" not in main.commands:
        main.add_command(status)
    worker = main.commands.get("worker")
    if worker is None:
        raise ValueError("register() extends the group's `worker` command: define it first")
    if not any(param.name == "check" for param in worker.params):
        main.add_command(_with_check(worker), "worker")
