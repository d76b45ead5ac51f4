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

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def main(argv: list[str]) -> None:
    parent, args = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the campaign died before the signal was armed
        os._exit(1)
    os.execv(sys.executable, [sys.executable, "-m", "postline", *args])  # noqa: S606 - our own interpreter


if __name__ == "__main__":
    main(sys.argv[1:])
