"""The file through which `postline dev` tells the other commands where it runs.

`postline dev` writes `<data dir>/dev.env` (owner-only: it holds the callback
signing secret and any API key) once its servers are up. Every other command
that takes `--data-dir` reads it: `worker`, `api`, `migrate` and `status` take
the server URLs from it when DATABASE_URL / REDIS_URL are unset; `flow`,
`messages` and `dead-letters` take the API's URL and key from it. The file
stays after dev stops, so the signing secret is the same on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEV_ENV_FILE = "dev.env"
#: Keys that only say where this dev instance listens; never settings of the service.
API_URL_KEY = "DEV_API_URL"
SIMULATOR_URL_KEY = "DEV_SIMULATOR_URL"
SAVED_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_BASE_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_BASE_URL",
    "CALLBACK_SIGNING_SECRET",
    "PUBLIC_BASE_URL",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "CALLBACK_ALLOW_PRIVATE_NETWORKS",
    "API_KEYS",
    "LOG_DIR",
    API_URL_KEY,
    SIMULATOR_URL_KEY,
)


def dev_env_path(data_dir: Path) -> Path:
    return data_dir / DEV_ENV_FILE


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines; comments and other lines are skipped, a missing file is empty."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def write_dev_env(data_dir: Path, env: Mapping[str, str]) -> None:
    """Writes the saved keys of `env` that are set; created owner-only, never wider."""
    lines = [f"{key}={env[key]}" for key in SAVED_KEYS if env.get(key)]
    path = dev_env_path(data_dir)
    # Created owner-only, so the secrets are never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # a file left by an older version may have been wider
