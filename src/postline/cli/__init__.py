"""The `postline` command: one group, its subcommands in modules by theme.

- `serve`: `api`, `worker` (with `--check`, the health probe), `migrate`, `dev`;
- `simulator`: the Twilio + SendGrid simulator;
- `status`: `postline status` and the live-worker check it shares with `worker --check`;
- `bench`: `bench` and `chaos`, the measurements and the fault campaign;
- `flow`: one message of each channel walked through a running Postline;
- `messages`, `dead_letters`: an operator's look at messages and failed ones,
  with retry, cancel and replay, through the HTTP API (`operator`);
- `purge`: housekeeping once, now (the workers purge by themselves).

`config` holds what they share: the settings, the option type and the data
directory (`--data-dir`), through whose dev.env (`devenv`) every command finds
the `postline dev` running there; `ports` refuses a taken port up front.

Every option falls back to the environment variable
`POSTLINE_<COMMAND>_<OPTION>` (click's `auto_envvar_prefix`; a group's
subcommand adds its name, `POSTLINE_MESSAGES_LIST_STATUS`), which `--help`
shows. Each command imports what it needs when it runs, so `postline --help`
loads little beyond click.
"""

from __future__ import annotations

import click

from postline.cli import bench, dead_letters, flow, messages, purge, serve, simulator, status
from postline.cli.config import ENV_PREFIX


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "auto_envvar_prefix": ENV_PREFIX,
    }
)
def main() -> None:
    """Postline: SMS, MMS, WhatsApp and email over one HTTP API."""


for _command in (
    serve.api,
    serve.worker,
    serve.migrate,
    simulator.simulator,
    serve.dev,
    bench.bench,
    flow.flow,
    status.status,
    messages.messages,
    dead_letters.dead_letters,
    purge.purge,
    bench.chaos,
):
    main.add_command(_command)
