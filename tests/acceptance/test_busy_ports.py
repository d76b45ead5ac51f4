"""A port another program holds stops a command in one line, before it starts anything."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.support.harness import free_port
from tests.support.processes import clean_env, run_postline, socket_listening


@pytest.mark.parametrize("flag", ["--port", "--simulator-port"])
def test_a_busy_port_is_one_line_and_nothing_starts(flag: str, tmp_path: Path) -> None:
    holder = psutil.Process()
    with socket_listening() as busy:
        ports = {"--port": str(free_port()), "--simulator-port": str(free_port()), flag: busy}
        started = time.monotonic()
        answer = run_postline(
            "dev", "--data-dir", str(tmp_path / "state"), *(a for kv in ports.items() for a in kv),
            cwd=tmp_path, env=clean_env(),
        )  # fmt: skip
    envvar = "POSTLINE_DEV_" + flag.lstrip("-").upper().replace("-", "_")
    assert answer.returncode == 1
    assert answer.stderr == (
        f"postline: port {busy} is in use; pick another with {flag} (or {envvar})\n"
    )
    assert answer.stdout == ""
    assert time.monotonic() - started < 30
    # Nothing started: no data dir, no server, no child left behind.
    assert not (tmp_path / "state").exists()
    assert not any(str(tmp_path) in " ".join(p.cmdline()) for p in holder.children(True))


def test_api_and_simulator_refuse_a_busy_port_too(tmp_path: Path) -> None:
    with socket_listening() as busy:
        for command in ("api", "simulator"):
            answer = run_postline(command, "--port", busy, cwd=tmp_path, env=clean_env())
            assert answer.returncode == 1, answer.stderr
            expected = f"port {busy} is in use; pick another with --port (or POSTLINE_"
            assert answer.stderr.startswith(f"postline: {expected}{command.upper()}_PORT)")
            assert answer.stderr.count("\n") == 1, answer.stderr
