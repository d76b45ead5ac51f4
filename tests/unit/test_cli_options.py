"""Every option of every `postline` command falls back to POSTLINE_<COMMAND>_<OPTION>,
and `--help` names it; but the switches that change what a command is."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from postline.cli import main
from postline.cli.config import EnvOption

COMMANDS = sorted(main.commands.items())
#: Options that change what a command is: command line only.
SWITCHES = {("api", "--insecure-no-auth"), ("worker", "--check"), ("chaos", "--check"),
            ("chaos", "--keep-data")}  # fmt: skip


def options(command: click.Command) -> list[click.Option]:
    return [
        param
        for param in command.params
        if isinstance(param, click.Option) and param.name != "help"
    ]


def expected_envvar(command_name: str, option: click.Option) -> str:
    longest = max(option.opts, key=len).lstrip("-")
    return f"POSTLINE_{command_name}_{longest}".upper().replace("-", "_")


def test_every_command_is_walked() -> None:
    assert {name for name, _ in COMMANDS} >= {"api", "worker", "dev", "flow", "status", "chaos"}
    assert all(options(command) or name == "migrate" for name, command in COMMANDS)


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_each_option_has_its_env_var_and_help_shows_it(
    name: str, command: click.Command, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    parent = click.Context(main, info_name="postline", auto_envvar_prefix="POSTLINE")
    context = click.Context(command, info_name=name, parent=parent)
    for option in options(command):
        envvar = expected_envvar(name, option)
        monkeypatch.setenv(envvar, "from-env")
        if (name, max(option.opts, key=len)) in SWITCHES:
            assert not option.allow_from_autoenv and envvar not in shown, envvar
            assert option.resolve_envvar_value(context) is None, envvar
            continue
        assert isinstance(option, EnvOption) and option.show_envvar, option.opts
        assert option.envvar is None, f"{option.opts}: a hand-written name, not the pattern"
        assert f"[env var: {envvar}]" in shown or f"env var: {envvar};" in shown, envvar
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
