"""`python -m postline.chaos.guard PARENT_PID ARGS...`: `postline ARGS`, dying with its parent.

Invariant: a child of the campaign never outlives it. The guard asks the
kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG survives exec),
checks the parent is still the one that started it, then becomes `python -m
postline ARGS` in place. Doing this in a separate exec, not in a
`preexec_fn`, keeps the fork safe while the campaign runs other threads.

The death signal fires when the *thread* that forked exits, so the campaign
spawns every child from its main thread. Off Linux there is no such signal;
the campaign's own cleanup (process groups, killed on exit) remains.
"""

from __future__ import annotations

import os
import signal
import sys

from postline.runtime import exit_with_parent


def main(argv: list[str]) -> None:
    parent, args = int(argv[0]), argv[1:]
    exit_with_parent(signal.SIGKILL, parent=parent)
    os.execv(sys.executable, [sys.executable, "-m", "postline", *args])  # noqa: S606 - our own interpreter


if __name__ == "__main__":
    main(sys.argv[1:])
