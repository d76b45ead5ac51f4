"""Ports a command is about to listen on: taken ones refused up front, in one line.

A server started on a taken port fails deep inside (uvicorn exits 3 with the
cause mid-log), and worse, a launcher waiting for "something answers on
port P" is fooled by whatever already holds P. So each command that listens
checks its fixed ports before it starts anything, and a taken one ends the
command with `postline: port P is in use; pick another with --flag (or VAR)`
and exit code 1.

The check binds with SO_REUSEADDR, as uvicorn and the simulator do: a port
whose last connections linger in TIME_WAIT is free to them, so it is free
here too; a port someone listens on is not.
"""

from __future__ import annotations

import socket
from typing import IO, Any

import click

from postline.cli.config import ENV_PREFIX


class PortInUse(click.ClickException):
    """A fixed port is taken; shown as one `postline: ...` line, exit code 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"postline: {self.format_message()}", err=True, file=file)


def is_free(host: str, port: int) -> bool:
    """Whether a server could listen on (host, port) now; an unknown host counts as free
    (the server then fails with its own, clearer error)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return True
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def any_free() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free(checks: list[tuple[str, int, str, str]]) -> None:
    """Raises `PortInUse` for the first taken port of (host, port, command, flag) checks.

    The message names the flag and its variable, `POSTLINE_<COMMAND>_<FLAG>`.
    """
    for host, port, command, flag in checks:
        if port and not is_free(host, port):
            envvar = f"{ENV_PREFIX}_{command}_{flag.lstrip('-')}".upper().replace("-", "_")
            raise PortInUse(f"port {port} is in use; pick another with {flag} (or {envvar})")
