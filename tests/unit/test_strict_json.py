"""What counts as plain JSON for a request body (api.strict_json)."""

from __future__ import annotations

import pytest

from postline.api.errors import ApiError
from postline.api.strict_json import MAX_DEPTH, deeper_than, load_strict


def arrays(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        (1, 0, False),
        ("text", 1, False),
        ([], 1, False),
        ([], 0, True),
        ({"a": {"b": [1, 2]}}, 3, False),
        ({"a": {"b": [1, 2]}}, 2, True),
        ({"a": 1, "b": [[[]]]}, 4, False),
        ({"a": 1, "b": [[[]]]}, 3, True),
        ([{}, [{}], {"x": [[]]}], 3, True),
    ],
)
def test_depth(value: object, limit: int, expected: bool) -> None:
    assert deeper_than(value, limit) is expected


def test_the_limit_itself_is_allowed_one_more_is_not() -> None:
    assert load_strict(arrays(MAX_DEPTH)) is not None
    with pytest.raises(ApiError) as caught:
        load_strict(arrays(MAX_DEPTH + 1))
    assert caught.value.status == 422
    assert caught.value.details[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b"-Infinity", b"[1e999]", b'"\\ud800"', b'"\\udfff"', b'{"a": NaN}',
     b"", b"\xff", b"{,}", b'"\\u00"'],
)  # fmt: skip
def test_not_plain_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        load_strict(raw)
    assert caught.value.status == 422
    assert caught.value.code == "validation_error"


def test_deep_input_does_not_exhaust_the_stack() -> None:
    with pytest.raises(ApiError):
        load_strict(arrays(1000))  # orjson's own limit is 1024; ours is far below
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    assert deeper_than(nested, MAX_DEPTH)


def test_surrogate_pairs_are_fine() -> None:
    assert load_strict(b'"\\ud83d\\ude00"') == "\U0001f600"
