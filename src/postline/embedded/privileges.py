"""Running the embedded servers as an unprivileged user when the launcher is root.

PostgreSQL refuses to run as root. Redis would run, but a root Redis that any
local user can reach without a password lets them write files anywhere
(``CONFIG SET dir`` + ``SAVE``), so it drops privileges too. Both run as one
system account, created on first use. When the launcher is not root nothing
here changes anything: the servers run as the launcher's user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from postline.embedded.process import EmbeddedServerError, ServiceUser

logger = logging.getLogger("postline.embedded")

SERVICE_USER = "postline-pg"
_USERADD_EXISTS = 9  # useradd's exit code when a concurrent launcher created the user first


def service_user() -> ServiceUser | None:
    """The account to run servers as, or None to run them as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _create_user()
        entry = pwd.getpwnam(SERVICE_USER)
    return ServiceUser(name=SERVICE_USER, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_user() -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedServerError(
            f"running as root needs the system user {SERVICE_USER!r}, and useradd is missing; "
            "create that user or run as an ordinary user"
        )
    argv = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode not in (0, _USERADD_EXISTS):
        raise EmbeddedServerError(
            f"could not create user {SERVICE_USER!r}: {result.stderr.strip()}"
        )
    logger.info("created system user %s to run embedded servers as", SERVICE_USER)


def prepare_data_dir(path: Path, user: ServiceUser | None) -> None:
    """Create `path` as a private directory owned by the account the server runs as."""
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        grant_traversal(path)
        if path.stat().st_uid != user.uid:
            # A data dir first made by root, or by a non-root run: hand all of it over.
            _chown_tree(path, user)
    # PostgreSQL insists on 0700 (or 0750); Redis' AOF holds message data too.
    path.chmod(0o700)


def _chown_tree(root: Path, user: ServiceUser) -> None:
    os.chown(root, user.uid, user.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(Path(dirpath, name), user.uid, user.gid, follow_symlinks=False)


def grant_traversal(path: Path) -> None:
    """Add o+x to every ancestor of `path` that lacks it, so the service user can reach it.

    Only the search bit: the service user must not be able to list, say, /root.
    """
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("granting o+x on %s so %s can reach %s", parent, SERVICE_USER, path)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def grant_read_tree(root: Path) -> None:
    """Make the bundled binaries, libraries and data under `root` usable by the service user.

    Wheels normally install them world-readable already; chmod runs only where
    a bit is missing (e.g. a venv installed under a restrictive umask).
    """
    if not root.exists():
        return
    grant_traversal(root)
    for dirpath, _dirnames, filenames in os.walk(root):
        _add_bits(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            file = Path(dirpath, name)
            mode = file.lstat().st_mode
            if stat.S_ISREG(mode):
                _add_bits(file, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _add_bits(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)
