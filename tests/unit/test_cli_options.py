"""Every option of every `postline` command falls back to POSTLINE_<COMMAND>_<OPTION>,
and `--help` names it; but the switches that change what a command is. A
group's subcommand adds its name (POSTLINE_MESSAGES_LIST_STATUS). `--data-dir`
also falls back to POSTLINE_DATA_DIR, shared by every command."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from postline.cli import main
from postline.cli.config import SHARED_DATA_DIR_ENV, DataDirOption, EnvOption


def leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    """Every runnable command, named by its words: `api`, `messages list`."""
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += leaves(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return sorted(found)


COMMANDS = leaves(main)
#: Options that change what a command is: command line only.
SWITCHES = {("api", "--insecure-no-auth"), ("worker", "--check"), ("chaos", "--check"),
            ("chaos", "--keep-data"), ("dead-letters replay", "--yes"),
            ("dead-letters replay", "--dry-run"), ("purge", "--dry-run")}  # fmt: skip
#: The commands that run, join or read a `postline dev`, so must follow its data dir.
FOLLOW_DEV = {"api", "worker", "migrate", "dev", "status", "flow", "messages get",
              "messages list", "messages retry", "messages cancel", "dead-letters list",
              "dead-letters replay", "purge"}  # fmt: skip


def options(command: click.Command) -> list[click.Option]:
    return [
        param
        for param in command.params
        if isinstance(param, click.Option) and param.name != "help"
    ]


def expected_envvar(command_name: str, option: click.Option) -> str:
    longest = max(option.opts, key=len).lstrip("-")
    return f"POSTLINE_{command_name}_{longest}".upper().replace("-", "_").replace(" ", "_")


def context_of(name: str) -> click.Context:
    """The context click builds for `postline <name>`, the way the real entry point does."""
    context = click.Context(main, info_name="postline", auto_envvar_prefix="POSTLINE")
    group: click.Command = main
    for word in name.split():
        assert isinstance(group, click.Group)
        group = group.commands[word]
        context = click.Context(group, info_name=word, parent=context)
    return context


def test_every_command_is_walked() -> None:
    names = {name for name, _ in COMMANDS}
    assert names >= {"api", "worker", "dev", "flow", "status", "chaos"} | FOLLOW_DEV
    assert all(options(command) for _, command in COMMANDS)


@pytest.mark.parametrize("name", sorted(FOLLOW_DEV))
def test_the_data_dir_is_one_option_with_one_shared_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = dict(COMMANDS)[name]
    (option,) = [o for o in options(command) if "--data-dir" in o.opts]
    assert isinstance(option, DataDirOption)
    context = context_of(name)
    monkeypatch.setenv(SHARED_DATA_DIR_ENV, "shared")
    assert option.resolve_envvar_value(context) == "shared"
    monkeypatch.setenv(expected_envvar(name, option), "own")
    assert option.resolve_envvar_value(context) == "own", "the command's own variable wins"
    shown = " ".join(CliRunner().invoke(main, [*name.split(), "--help"]).output.split())
    assert SHARED_DATA_DIR_ENV in shown


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_each_option_has_its_env_var_and_help_shows_it(
    name: str, command: click.Command, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    context = context_of(name)
    for option in options(command):
        envvar = expected_envvar(name, option)
        monkeypatch.setenv(envvar, "from-env")
        if (name, max(option.opts, key=len)) in SWITCHES:
            assert not option.allow_from_autoenv and envvar not in shown, envvar
            assert option.resolve_envvar_value(context) is None, envvar
            continue
        assert isinstance(option, EnvOption) and option.show_envvar, option.opts
        assert option.envvar is None, f"{option.opts}: a hand-written name, not the pattern"
        assert re.search(rf"env var: {envvar}[];,]", shown), envvar
        assert option.resolve_envvar_value(context) == "from-env", envvar


def test_every_switch_exists() -> None:
    found = {(n, max(o.opts, key=len)) for n, c in COMMANDS for o in options(c)}
    assert found >= SWITCHES


def test_an_env_var_reaches_the_command() -> None:
    """Through the real entry point: the variable, not a flag, sets the URL flow calls."""
    answer = subprocess.run(
        [sys.executable, "-m", "postline", "flow", "--timeout", "1"],
        env={"POSTLINE_FLOW_URL": "http://127.0.0.1:9/nowhere", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 1
    assert re.search(r"GET http://127\.0\.0\.1:9/nowhere/health", answer.stdout), answer.stdout
