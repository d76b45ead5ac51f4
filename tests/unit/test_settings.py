"""Settings that would let a live send be taken over are refused at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from postline.settings import Settings


@pytest.mark.parametrize("visibility", [5, 12])
def test_a_lease_shorter_than_a_send_is_refused(visibility: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, visibility_timeout_seconds=visibility, provider_timeout_seconds=10)  # type: ignore[call-arg]
    assert (
        f"VISIBILITY_TIMEOUT_SECONDS ({visibility}) must be at least PROVIDER_TIMEOUT_SECONDS (10)"
        in str(caught.value)
    )


def test_the_defaults_and_the_smallest_safe_lease_are_accepted() -> None:
    Settings(_env_file=None)  # type: ignore[call-arg]
    Settings(_env_file=None, visibility_timeout_seconds=15, provider_timeout_seconds=10)  # type: ignore[call-arg]
