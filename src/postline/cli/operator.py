"""What `postline messages` and `postline dead-letters` share: the API, options, views.

Both speak to a running API over HTTP through the typed client
(`postline.client`, which retries 503s, 429s and dropped connections), never
to PostgreSQL or Redis: an operator's terminal needs only the API's URL and
key, and every change goes through the same rules as the API's own callers.
The URL and key come from `--url` / API_KEYS, else from the dev.env of
`--data-dir` (`config.api_target`).

Views: tables for people by default, and `--json` for scripts, where a
message is the JSON the API shows (`message_json`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from postline.cli.config import api_target, data_dir_option, option
from postline.domain.channels import Channel

if TYPE_CHECKING:
    from rich.console import Console

    from postline.client import ApiError, Client, Event, Message

F = TypeVar("F", bound=Callable[..., Any])
#: The most messages one page of the API holds.
PAGE_LIMIT = 500
PIPED_WIDTH = 200
#: What `messages get` shows of a message, in this order (`--json` shows it all).
SHOWN_FIELDS = (
    "id",
    "status",
    "type",
    "from",
    "to",
    "subject",
    "body",
    "ordering_key",
    "attempts",
    "provider",
    "provider_message_id",
    "route",
    "send_at",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "sent_at",
    "delivered_at",
)


def api_options(command: F) -> F:
    """--url, --data-dir and --json, the options of every operator command."""
    for decorate in (
        option("--json", is_flag=True, help="Print JSON instead of tables."),
        data_dir_option(),
        option(
            "--url",
            default=None,
            help="The API [default: the one `postline dev` of --data-dir runs, else "
            "http://127.0.0.1:8080].",
        ),
    ):
        command = decorate(command)
    return command


def filter_options(command: F) -> F:
    """--type, --to and --ordering-key, the filters the API's list takes."""
    for decorate in (
        option("--ordering-key", default=None, help="Only messages with this ordering key."),
        option("--to", default=None, help="Only messages to this recipient."),
        option(
            "--type",
            default=None,
            type=click.Choice([c.value for c in Channel]),
            help="Only messages of this channel.",
        ),
    ):
        command = decorate(command)
    return command


def list_options(command: F) -> F:
    """The options of a list command: the filters, --limit, then `api_options`."""
    limit = option(
        "--limit", default=20, type=click.IntRange(min=1), help="At most this many, newest first."
    )
    return filter_options(limit(api_options(command)))


@contextlib.contextmanager
def connected(url: str | None, data_dir: Path) -> Iterator[Client]:
    """A client of the API; its failures become one-line errors naming the API."""
    from postline.client import Client, ClientError, Unauthorized, Unreachable

    base_url, api_key = api_target(data_dir=data_dir, url=url)
    try:
        with Client(base_url, api_key, retries=2) as client:
            yield client
    except Unreachable as exc:
        raise click.ClickException(
            f"Postline does not answer at {base_url}: is `postline dev` (or `postline api`) "
            "running? Point --url or --data-dir at it"
        ) from exc
    except Unauthorized as exc:
        raise click.ClickException(f"{base_url} wants an API key: set API_KEYS") from exc
    except ClientError as exc:
        raise click.ClickException(f"{base_url}: {exc}") from exc


def get_message(client: Client, message_id: str) -> Message:
    """The message, or a one-line error naming the id the API does not know."""
    from postline.client import NotFound

    try:
        return client.get(message_id)
    except NotFound:
        raise click.ClickException(f"no message {message_id}") from None


def refusal(message_id: str, exc: ApiError) -> dict[str, Any]:
    """What `--json` says of an id the API refused to change."""
    return {"id": message_id, "error": {"code": exc.code, "message": exc.message}}


def newest(
    client: Client,
    *,
    limit: int,
    status: str | None,
    type: str | None,  # the API's parameter name
    to: str | None,
    ordering_key: str | None,
) -> list[Message]:
    """Up to `limit` messages matching the filters, newest first, paging as needed."""
    pages = client.list(
        status=status, type=type, to=to, ordering_key=ordering_key, limit=min(limit, PAGE_LIMIT)
    )
    return list(itertools.islice(pages, limit))


def list_messages(
    *, url: str | None, data_dir: Path, as_json: bool, title: str, **filters: Any
) -> None:
    """The listing both `messages list` and `dead-letters list` print."""
    with connected(url, data_dir) as client:
        found = newest(client, **filters)
    show_messages(found, as_json=as_json, title=title)


def show_messages(found: list[Message], *, as_json: bool, title: str) -> None:
    if as_json:
        echo_json([message_json(m) for m in found])
    elif found:
        print_messages(found, title=title)
    else:
        click.echo("no messages match")


def message_json(message: Message) -> dict[str, Any]:
    """The message as the API shows it: `from`, not `from_`; RFC 3339 times."""
    return {
        ("from" if field.name == "from_" else field.name): _plain(getattr(message, field.name))
        for field in dataclasses.fields(message)
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def console() -> Console:
    from rich.console import Console

    # Addresses, bodies and errors are data, not rich markup or :emoji: codes. Piped
    # (into grep, say), rows are not folded to 80 columns: an id must stay whole.
    width = None if sys.stdout.isatty() else PIPED_WIDTH
    return Console(markup=False, emoji=False, highlight=False, width=width)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _error(message: Message) -> str:
    if message.error is None:
        return ""
    return " ".join(str(part) for part in (message.error.code, message.error.message) if part)


def print_messages(messages: list[Message], *, title: str) -> None:
    """One row per message, newest first, as the API lists them."""
    from rich.table import Table

    table = Table(title=f"{title} ({len(messages)})", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy into the next command
    for column in ("status", "type", "to", "attempts", "created", "error"):
        table.add_column(column, justify="right" if column == "attempts" else "left")
    for m in messages:
        table.add_row(m.id, m.status, m.type, m.to, str(m.attempts), _when(m.created_at), _error(m))
    console().print(table)


def print_message(message: Message, events: list[Event]) -> None:
    """One message's fields, then its status history."""
    from rich.table import Table

    fields = Table(show_header=False, box=None)
    shown = message_json(message)
    for name in SHOWN_FIELDS:
        if shown.get(name) not in (None, ""):
            fields.add_row(name, str(shown[name]))
    if message.error is not None:
        fields.add_row("error", _error(message))
    history = Table(title="History", title_justify="left")
    for column in ("at", "status", "attempt", "detail"):
        history.add_column(column)
    for event in events:
        problem = event.error
        detail = " ".join(
            part
            for part in (event.detail, problem and problem.code, problem and problem.message)
            if part
        )
        history.add_row(_when(event.at), event.status, str(event.attempt), detail)
    out = console()
    out.print(fields)
    out.print(history)
