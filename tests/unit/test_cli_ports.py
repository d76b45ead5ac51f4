"""A taken port is refused up front, in one line naming the flag and its variable."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from postline.cli import main
from postline.cli.ports import PortInUse, is_free, require_free


def test_a_port_someone_listens_on_is_taken_and_the_refusal_names_flag_and_variable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not is_free("127.0.0.1", port)
        with pytest.raises(PortInUse) as refused:
            require_free([("127.0.0.1", port, "dev", "--simulator-port")])
    assert refused.value.exit_code == 1
    assert refused.value.format_message() == (
        f"port {port} is in use; pick another with --simulator-port "
        "(or POSTLINE_DEV_SIMULATOR_PORT)"
    )
    assert is_free("127.0.0.1", port)


def test_a_port_left_in_time_wait_is_free_as_it_is_to_the_servers() -> None:
    """uvicorn binds with SO_REUSEADDR, so a port whose connections linger is not taken."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the side that closes first keeps TIME_WAIT
        client.close()
    assert is_free("127.0.0.1", port)


def test_the_command_prints_one_line_with_the_prefix_and_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = CliRunner().invoke(main, ["api", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output == (
        f"postline: port {port} is in use; pick another with --port (or POSTLINE_API_PORT)\n"
    )
