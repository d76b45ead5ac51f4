"""Keyset pages, as every list route takes and answers them.

A page is asked for with `limit` and the `cursor` the page before gave
(`next_cursor`); the store pages on a sequence (`store/listing.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from starlette.responses import Response

from postline.api.errors import ApiError
from postline.api.routes.messages import json_response
from postline.store.listing import CURSOR_PATTERN, BadCursor, decode_cursor, encode_cursor

MAX_PAGE = 500

LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Entries per page.")]
CursorQuery = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="A `next_cursor` from the page before."),
]


def before_seq(cursor: str | None) -> int | None:
    """The sequence a page continues after; 422 for a cursor this API did not make."""
    try:
        return decode_cursor(cursor) if cursor else None
    except BadCursor as exc:
        raise ApiError(422, "cursor is not valid: pass back a next_cursor as it was") from exc


def page_answer(items: list[dict[str, Any]], last: int | None) -> Response:
    return json_response(
        200, {"items": items, "next_cursor": encode_cursor(last) if last is not None else None}
    )
