"""Marks shared by test modules."""

from __future__ import annotations

import pytest

#: `make test` runs the tests in two processes (pytest-xdist, `--dist loadgroup`).
#: The tests that keep both cores busy (a stack under sustained load) share this
#: group, so they run one after another in one process and two of them never
#: compete for the machine; everything else fills the other process meanwhile.
LOADS_THE_MACHINE = pytest.mark.xdist_group("loads-the-machine")
