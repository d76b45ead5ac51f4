"""Free TCP ports for servers started on a developer machine."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing is bound to right now.

    The port is only free at the moment of asking: another process may take it
    before our server binds it. `EmbeddedServer.start` therefore retries with a
    new port when a server it started on an automatically chosen port reports
    "Address already in use".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
