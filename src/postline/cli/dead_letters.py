"""`postline dead-letters list|replay`: the failed messages, and sending them again.

A dead letter is a message that ended `failed` (a permanent provider error,
or its attempts used up; SPEC 2). Listing them is the API's list with
`status=failed`; replaying one is the API's retry, which grants it a fresh
attempt budget. PostgreSQL is the truth here, not the `message_queue:dead`
stream: a message retried by hand leaves the stream entry behind, and a
replay must not send it twice.

A replay by filter can touch many messages, so it is guarded: `--dry-run`
lists what it would replay; otherwise it asks (on a terminal) or wants
`--yes`. A replay of ids given one by one needs neither. Neither switch has
an environment variable: a shared environment must not turn the guard off.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from postline.cli.config import option, switch
from postline.cli.operator import (
    api_options,
    connected,
    echo_json,
    filter_options,
    get_message,
    list_messages,
    list_options,
    message_json,
    newest,
    refusal,
    show_messages,
)

FAILED = "failed"


@click.group(name="dead-letters")
def dead_letters() -> None:
    """List the failed messages and replay them through the API."""


@dead_letters.command(name="list")
@list_options
def list_(limit: int, url: str | None, data_dir: Path, json: bool, **filters: str | None) -> None:
    """List the failed messages, newest first, with their errors."""
    list_messages(
        url=url,
        data_dir=data_dir,
        as_json=json,
        title="Dead letters",
        limit=limit,
        status=FAILED,
        **filters,
    )


@dead_letters.command()
@click.argument("message_ids", nargs=-1)
@filter_options
@option(
    "--limit",
    default=100,
    type=click.IntRange(min=1),
    help="Replay at most this many of the matching ones, newest first.",
)
@switch("--dry-run", help="Only list what would be replayed.")
@switch("--yes", help="Replay every matching message without asking.")
@api_options
def replay(
    message_ids: tuple[str, ...],
    type: str | None,  # the API's parameter name
    to: str | None,
    ordering_key: str | None,
    limit: int,
    dry_run: bool,
    yes: bool,
    url: str | None,
    data_dir: Path,
    json: bool,
) -> None:
    """Send failed messages again: the ids given, else those matching the filters."""
    from postline.client import Conflict, NotFound

    with connected(url, data_dir) as client:
        if message_ids:
            chosen = [get_message(client, message_id) for message_id in message_ids]
        else:
            chosen = newest(
                client, limit=limit, status=FAILED, type=type, to=to, ordering_key=ordering_key
            )
        if not message_ids and len(chosen) == limit:
            click.echo(f"(--limit {limit} reached: more may match; run again for them)", err=True)
        if dry_run or not chosen:
            show_messages(chosen, as_json=json, title="Would replay")
            return
        if not (message_ids or yes):
            _confirm(len(chosen))
        outcomes = []
        for message in chosen:
            try:
                outcomes.append(message_json(client.retry(message.id)))
            except (Conflict, NotFound) as exc:  # no longer failed: someone else moved it
                outcomes.append(refusal(message.id, exc))
    replayed = sum(1 for o in outcomes if "error" not in o)
    if json:
        echo_json(outcomes)
    else:
        for outcome in outcomes:
            state = outcome.get("status") or f"skipped: {outcome['error']['message']}"
            click.echo(f"{outcome['id']}: {state}")
        click.echo(f"replayed {replayed} of {len(outcomes)}")
    if message_ids and replayed < len(outcomes):
        raise SystemExit(1)


def _confirm(count: int) -> None:
    """Asks on a terminal; elsewhere refuses, naming the switches."""
    question = f"replay {count} failed message{'s' if count != 1 else ''}?"
    if not sys.stdin.isatty():
        raise click.ClickException(
            f"{question} pass --yes to replay them, or --dry-run to list them"
        )
    click.confirm(question.capitalize(), abort=True)
