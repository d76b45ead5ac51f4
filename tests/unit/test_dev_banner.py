"""What `postline dev` prints and leaves on disk: names of secrets, never the secrets."""

from __future__ import annotations

import base64
import hashlib
import socket
import stat
from pathlib import Path

import pytest

from postline.cli.devenv import read_env_file, write_dev_env
from postline.cli.launcher import _banner, worker_metrics_ports
from postline.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
ENV = {
    "DATABASE_URL": "postgresql://postline:db-password@127.0.0.1:5432/postline",
    "REDIS_URL": "redis://:redis-password@127.0.0.1:6379/0",
    "TWILIO_BASE_URL": "http://127.0.0.1:8900",
    "CALLBACK_SIGNING_SECRET": SECRET,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": "true",
}


def test_the_banner_shows_a_fingerprint_of_the_signing_secret_and_where_it_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, database_url=None, redis_url=None)  # type: ignore[call-arg]

    _banner(ENV, "127.0.0.1", 8080, settings, tmp_path)

    out = capsys.readouterr().out
    assert SECRET.removeprefix("whsec_") not in out
    assert "sha256:" + hashlib.sha256(SECRET.encode()).hexdigest()[:8] in out
    assert str(tmp_path / "dev.env") in out
    assert "db-password" not in out and "redis-password" not in out


def test_the_dev_env_file_is_owner_only_and_lets_joining_workers_allow_loopback(
    tmp_path: Path,
) -> None:
    write_dev_env(tmp_path, ENV)

    path = tmp_path / "dev.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert f"CALLBACK_SIGNING_SECRET={SECRET}" in lines
    assert "CALLBACK_ALLOW_PRIVATE_NETWORKS=true" in lines


def test_the_dev_env_file_tells_other_commands_where_dev_runs(tmp_path: Path) -> None:
    where = {"DEV_API_URL": "http://127.0.0.1:8181", "DEV_SIMULATOR_URL": "http://127.0.0.1:8901",
             "API_KEYS": "k1,k2", "LOG_DIR": str(tmp_path / "logs")}  # fmt: skip

    write_dev_env(tmp_path, {**ENV, **where, "HOME": "/root"})

    saved = read_env_file(tmp_path / "dev.env")
    assert {k: saved.get(k) for k in where} == where
    assert "HOME" not in saved, "only the keys dev means to share"


def test_the_banner_names_the_logs_under_the_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, database_url=None, redis_url=None)  # type: ignore[call-arg]

    _banner({**ENV, "LOG_DIR": str(tmp_path / "logs")}, "127.0.0.1", 8080, settings, tmp_path)

    assert f"{tmp_path}/logs/app.log" in capsys.readouterr().out


def test_the_banner_names_the_cluster_metrics_and_each_workers_metrics_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, database_url=None, redis_url=None)  # type: ignore[call-arg]
    urls = ["http://127.0.0.1:9101/metrics", "http://127.0.0.1:9102/metrics"]

    _banner(ENV, "127.0.0.1", 8080, settings, tmp_path, urls)

    [line] = [line for line in capsys.readouterr().out.splitlines() if "Metrics" in line]
    assert "http://127.0.0.1:8080/metrics (cluster-wide)" in line
    assert all(url in line for url in urls)


def test_workers_get_metrics_ports_from_the_first_on_and_a_free_one_for_a_taken_one() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert worker_metrics_ports(free, 1) == [free]
    assert worker_metrics_ports(0, 3) == []

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        first = taken.getsockname()[1]
        ports = worker_metrics_ports(first, 3)

    assert len(ports) == 3 and len(set(ports)) == 3
    assert ports[0] != first
