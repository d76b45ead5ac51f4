"""`postline messages get|list|retry|cancel`: one message, or a few, from a terminal.

Each is one or a few calls of the HTTP API (SPEC 3) through `operator`;
`retry` and `cancel` take several ids and say, per id, what became of it,
exiting 1 when any was refused (a 409 from the wrong status, an unknown id).
"""

from __future__ import annotations

from pathlib import Path

import click

from postline.cli.config import option
from postline.cli.operator import (
    api_options,
    connected,
    echo_json,
    get_message,
    list_messages,
    list_options,
    message_json,
    print_message,
    refusal,
)
from postline.domain.statuses import Status


@click.group()
def messages() -> None:
    """Look up, list, retry and cancel messages through the API."""


@messages.command()
@click.argument("message_id")
@api_options
def get(message_id: str, url: str | None, data_dir: Path, json: bool) -> None:
    """Show one message and its status history."""
    with connected(url, data_dir) as client:
        message = get_message(client, message_id)
        if json:
            echo_json(message_json(message))
            return
        print_message(message, client.events(message_id))


@messages.command(name="list")
@option(
    "--status",
    default=None,
    type=click.Choice([s.value for s in Status]),
    help="Only messages in this status.",
)
@list_options
def list_(limit: int, url: str | None, data_dir: Path, json: bool, **filters: str | None) -> None:
    """List messages, newest first."""
    list_messages(
        url=url, data_dir=data_dir, as_json=json, title="Messages", limit=limit, **filters
    )


@messages.command()
@click.argument("message_ids", nargs=-1, required=True)
@api_options
def retry(message_ids: tuple[str, ...], url: str | None, data_dir: Path, json: bool) -> None:
    """Queue failed messages again, each with a fresh attempt budget."""
    _change("retry", message_ids, url=url, data_dir=data_dir, as_json=json)


@messages.command()
@click.argument("message_ids", nargs=-1, required=True)
@api_options
def cancel(message_ids: tuple[str, ...], url: str | None, data_dir: Path, json: bool) -> None:
    """Cancel scheduled, pending or retrying messages."""
    _change("cancel", message_ids, url=url, data_dir=data_dir, as_json=json)


def _change(
    action: str, message_ids: tuple[str, ...], *, url: str | None, data_dir: Path, as_json: bool
) -> None:
    """Applies `action` to each id; reports each outcome; exit 1 if any was refused."""
    from postline.client import Conflict, NotFound, ValidationError

    refused = 0
    results = []
    with connected(url, data_dir) as client:
        call = client.retry if action == "retry" else client.cancel
        for message_id in message_ids:
            try:
                changed = call(message_id)
            except (Conflict, NotFound, ValidationError) as exc:
                refused += 1
                results.append(refusal(message_id, exc))
                if not as_json:
                    click.echo(f"{message_id}: refused: {exc.message}", err=True)
                continue
            results.append(message_json(changed))
            if not as_json:
                click.echo(f"{message_id}: {changed.status}")
    if as_json:
        echo_json(results)
    if refused:
        raise SystemExit(1)
