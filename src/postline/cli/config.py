"""What every `postline` command shares: its option type and its settings.

Options: every one falls back to `POSTLINE_<COMMAND>_<OPTION>` (click derives
it from the command and the option's name) and `--help` shows it, so one
pattern names them all and none is written by hand. Switches that change
what a command is (`worker --check` runs a probe instead of a worker, `api
--insecure-no-auth` drops a safety check) have none: an environment shared
with something else must not turn them on.

Settings: the service's own variables (DATABASE_URL, REDIS_URL, ...) are a
different layer, read by `postline.settings` from the environment and `.env`;
with no server URLs, a command joins the `postline dev` running in this
folder through the file it writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from postline.settings import Settings

ENV_PREFIX = "POSTLINE"
DATA_DIR = Path(".postline")
F = TypeVar("F", bound=Callable[..., Any])


class EnvOption(click.Option):
    """A click option whose environment variable `--help` names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("show_envvar", True)
        super().__init__(*args, **kwargs)


def option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """`click.option` with `EnvOption`; the env var is click's automatic one."""
    return click.option(*param_decls, cls=EnvOption, **attrs)


def switch(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """A flag that changes what the command is: given on the command line only."""
    return click.option(*param_decls, is_flag=True, allow_from_autoenv=False, **attrs)


def _read_settings() -> Settings:
    """Settings from the environment, or a one-line reason why they are refused."""
    from pydantic import ValidationError

    from postline.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid configuration: {reasons}") from None


def load_settings(*, need_servers: bool = True, log_name: str | None = None) -> Settings:
    """Settings from the environment; falls back to a running `postline dev`'s servers."""
    from postline import logs

    settings = _read_settings()
    if need_servers and not (settings.database_url and settings.redis_url):
        from postline.cli.launcher import DEV_ENV_FILE, read_env_file

        saved = read_env_file(DATA_DIR / DEV_ENV_FILE)
        if not saved:
            raise click.ClickException(
                "DATABASE_URL and REDIS_URL are not set and no `postline dev` is running here: "
                "set them, or start `postline dev` (make run) first"
            )
        for key, value in saved.items():
            os.environ.setdefault(key, value)
        settings = _read_settings()
    log_file = Path(settings.log_dir) / log_name if settings.log_dir and log_name else None
    logs.configure(level=settings.log_level, fmt=settings.log_format, file=log_file)
    return settings
