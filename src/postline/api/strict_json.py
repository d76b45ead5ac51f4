"""Request bodies are plain JSON (RFC 8259), or refused before anything reads them.

orjson is strict by itself: `NaN`, `Infinity`, numbers beyond a double,
lone surrogates (`"\\ud800"`) and invalid UTF-8 are syntax errors to it,
where pydantic's own parser would let `NaN` and `Infinity` into metadata
(stored as null, silently) and big integers through to a 500. What orjson
does not bound tightly is depth, so that is checked here: no sane message
nests deeper than `MAX_DEPTH`, and a bound far below every recursion limit
downstream (orjson's encoder, PostgreSQL's jsonb parser) keeps them out of
reach.
"""

from __future__ import annotations

from typing import Any

import orjson

from postline.api.errors import ApiError, invalid

# The top-level object is level 1; a send body's metadata starts at level 2
# (level 4 inside a batch).
MAX_DEPTH = 32


def load_strict(raw: bytes) -> Any:
    """The parsed body; 422 in the envelope if it is not plain JSON within `MAX_DEPTH`."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _refused(f"the body is not valid JSON: {exc}") from exc
    if deeper_than(document, MAX_DEPTH):
        raise _refused(f"the body nests deeper than {MAX_DEPTH} levels")
    return document


def deeper_than(value: Any, limit: int) -> bool:
    """True if objects and arrays in `value` nest more than `limit` levels.

    Iterative and visiting containers only, so a typical body costs about a
    microsecond and no input can exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _refused(message: str) -> ApiError:
    return invalid([{"loc": ["body"], "msg": message, "type": "json_invalid"}], message)
