"""From rows to `Message`: the column list and the one conversion the store uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postline.domain.channels import Channel
from postline.domain.message import COLUMNS, Message
from postline.domain.statuses import Status

#: Every column of `Message`, for SELECT and RETURNING lists.
MESSAGE_COLUMNS = ", ".join(COLUMNS)


def message_of(row: Mapping[str, Any], *, prefix: str = "") -> Message:
    """The `Message` of a row that holds `MESSAGE_COLUMNS` (named `prefix` + column)."""
    values = {name: row[prefix + name] for name in COLUMNS}
    values["type"] = Channel(values["type"])
    values["status"] = Status(values["status"])
    return Message(**values)
