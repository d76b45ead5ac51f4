"""What every `postline` command shares: its option type and its settings.

Options: every one falls back to `POSTLINE_<COMMAND>_<OPTION>` (click derives
it from the command and the option's name) and `--help` shows it, so one
pattern names them all and none is written by hand. Switches that change
what a command is (`worker --check` runs a probe instead of a worker, `api
--insecure-no-auth` drops a safety check) have none: an environment shared
with something else must not turn them on.

The data directory is the one option every command shares, and the one
with a second variable: `--data-dir` falls back to its command's
`POSTLINE_<COMMAND>_DATA_DIR`, then to `POSTLINE_DATA_DIR`, so one export
makes every command follow a `postline dev --data-dir`.

Settings: the service's own variables (DATABASE_URL, REDIS_URL, ...) are a
different layer, read by `postline.settings` from the environment and `.env`;
with no server URLs, a command joins the `postline dev` of its data
directory through the file dev writes there (`postline.cli.devenv`).
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
#: The data directory's variable shared by every command, after the command's own.
SHARED_DATA_DIR_ENV = "POSTLINE_DATA_DIR"
DEFAULT_API_URL = "http://127.0.0.1:8080"
F = TypeVar("F", bound=Callable[..., Any])


class EnvOption(click.Option):
    """A click option whose environment variable `--help` names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("show_envvar", True)
        super().__init__(*args, **kwargs)


def option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """`click.option` with `EnvOption`; the env var is click's automatic one."""
    return click.option(*param_decls, cls=EnvOption, **attrs)


class DataDirOption(EnvOption):
    """`--data-dir`: the command's own variable first, then the one all commands share."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        own = super().resolve_envvar_value(ctx)
        return own if own is not None else os.environ.get(SHARED_DATA_DIR_ENV) or None

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra["envvars"] = (*extra.get("envvars", ()), SHARED_DATA_DIR_ENV)
        return extra


def data_dir_option() -> Callable[[F], F]:
    """The `--data-dir` of every command that runs, joins or reads a `postline dev`."""
    return click.option(
        "--data-dir",
        cls=DataDirOption,
        default=str(DATA_DIR),
        type=click.Path(file_okay=False, path_type=Path),
        help="Where `postline dev` keeps its servers' data, its logs and dev.env, "
        "which the other commands read to find it.",
    )


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


def load_settings(
    *,
    data_dir: Path = DATA_DIR,
    need_servers: bool = True,
    need_redis: bool = True,
    log_name: str | None = None,
) -> Settings:
    """Settings from the environment; falls back to the servers of `data_dir`'s `postline dev`.

    `need_redis=False`: a command that only reads PostgreSQL needs only DATABASE_URL.
    """
    from postline import logs
    from postline.cli.devenv import dev_env_path, read_env_file

    settings = _read_settings()
    if need_servers and not (settings.database_url and (settings.redis_url or not need_redis)):
        saved = read_env_file(dev_env_path(data_dir))
        if not saved:
            needed = "DATABASE_URL and REDIS_URL are" if need_redis else "DATABASE_URL is"
            raise click.ClickException(
                f"{needed} not set and no `postline dev` has run with "
                f"data dir {data_dir}: set them, start `postline dev` (make run) first, or "
                f"point --data-dir ({SHARED_DATA_DIR_ENV}) at the one dev uses"
            )
        for key, value in saved.items():
            os.environ.setdefault(key, value)
        settings = _read_settings()
    log_file = Path(settings.log_dir) / log_name if settings.log_dir and log_name else None
    logs.configure(level=settings.log_level, fmt=settings.log_format, file=log_file)
    return settings


def api_target(*, data_dir: Path, url: str | None) -> tuple[str, str | None]:
    """The API to talk to and its key: the flag, else what `postline dev` wrote, else :8080.

    The key is the first of API_KEYS (environment or `.env`), else the one
    dev was started with.
    """
    from postline.cli.devenv import API_URL_KEY, dev_env_path, read_env_file
    from postline.settings import split_api_keys

    saved = read_env_file(dev_env_path(data_dir))
    keys = _read_settings().api_key_list or split_api_keys(saved.get("API_KEYS"))
    return url or saved.get(API_URL_KEY) or DEFAULT_API_URL, keys[0] if keys else None
