"""The rooms' rules (README, "Architecture") hold, and the check can fail.

The contracts live in pyproject.toml under `[tool.importlinter]`; `make lint`
runs the same command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_broken_rule_fails_the_check(tmp_path: Path) -> None:
    """A contract the code breaks (the API uses services/) makes the command fail."""
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "postline"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "api without services"\ntype = "forbidden"\n'
        'source_modules = ["postline.api"]\nforbidden_modules = ["postline.services"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode != 0
    assert "api without services BROKEN" in result.stdout
