"""Request and response shapes of the messages domain (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.inputs import NOT_BLANK

CONTENT_MAX = 32_768
Role = Literal["user", "assistant", "system", "tool"]


class MessageInfo(msgspec.Struct, frozen=True):
    """One message of a session."""

    message_id: UUID
    session_id: UUID
    role: str
    content: str
    created_at: datetime


class MessageListResponse(msgspec.Struct, frozen=True):
    """A page of a session's history in the requested order; ``total`` is the session's message count.

    ``next_cursor`` continues after this page (null on the last page).
    """

    messages: list[MessageInfo]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None = None


class MessageCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /sessions/{session_id}/messages``: 1 to 32,768 characters, not only whitespace, no NUL."""

    role: Role
    # Linear-time pattern: some non-space character, and no NUL byte anywhere (PostgreSQL text can't hold one).
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=CONTENT_MAX, pattern=NOT_BLANK)]
