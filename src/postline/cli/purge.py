"""`postline purge`: housekeeping once, now, to its end.

The workers purge by themselves, a few batches every ten minutes (README,
"Housekeeping"); this runs the same purge from a terminal or a cron job
until nothing purgeable is left, with the configured retention or the days
given, and prints what it removed. Like the workers' purge it deletes a
batch a statement, so it can run beside them. `--dry-run` only counts; it
is a switch, like `dead-letters replay --dry-run`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from postline.cli.config import data_dir_option, load_settings, option, switch
from postline.domain.retention import Kind, describe
from postline.settings import MAX_RETENTION_DAYS

_DAYS = click.IntRange(min=0, max=MAX_RETENTION_DAYS)


@click.command()
@option(
    "--messages-older-than",
    type=_DAYS,
    default=None,
    metavar="DAYS",
    help="Purge settled messages last changed more than DAYS days ago, with their "
    "history (default: MESSAGE_RETENTION_DAYS; 0: keep them).",
)
@option(
    "--inbound-older-than",
    type=_DAYS,
    default=None,
    metavar="DAYS",
    help="Purge inbound messages received more than DAYS days ago "
    "(default: INBOUND_RETENTION_DAYS; 0: keep them).",
)
@switch("--dry-run", help="Count what would be purged; delete nothing.")
@data_dir_option()
def purge(
    messages_older_than: int | None, inbound_older_than: int | None, dry_run: bool, data_dir: Path
) -> None:
    """Purge old settled messages, old inbound messages, expired suppressions and
    idempotency keys now, as the workers do every ten minutes (needs DATABASE_URL,
    or a `postline dev`)."""
    from postline.services import housekeeping
    from postline.services.stats import DependencyUnavailable

    settings = load_settings(data_dir=data_dir, need_redis=False)
    assert settings.database_url
    retention = housekeeping.retention(
        settings, message_days=messages_older_than, inbound_days=inbound_older_than
    )
    try:
        counts = asyncio.run(
            housekeeping.purge_once(settings.database_url, retention, dry_run=dry_run)
        )
    except DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "would purge" if dry_run else "purged"
    ages = retention.ages()
    for kind, count in counts.items():
        click.echo(f"{verb} {count:,} {describe(kind, ages[kind])}")
    if Kind.MESSAGES not in ages:
        click.echo("kept every settled message (MESSAGE_RETENTION_DAYS is 0)")
    if Kind.INBOUND not in ages:
        click.echo("kept every inbound message (INBOUND_RETENTION_DAYS is 0)")
