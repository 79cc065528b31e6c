"""Request and response shapes of the sessions domain (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.inputs import WITHOUT_NUL, Id

SortBy = Literal["updated_at", "created_at"]
Order = Literal["desc", "asc"]


class SessionInfo(msgspec.Struct, frozen=True):
    """One chat session as the sidebar shows it."""

    session_id: UUID
    user_id: UUID
    title: str | None
    agent_name: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int
    is_active: bool
    snippet: str | None = None  # search results only: plain text around the first matched word


class SessionListResponse(msgspec.Struct, frozen=True):
    """A page of sessions; ``has_more`` = ``offset + len(sessions) < total`` (a capped search: another page exists)."""

    sessions: list[SessionInfo]
    total: int
    limit: int
    offset: int
    has_more: bool
    total_capped: bool = False  # a search with more than 1,000 matches: total is 1,000


TITLE_MAX = 255
# PostgreSQL text can't hold a NUL byte: refuse it as bad input (400), not a database error.
Title = Annotated[str, msgspec.Meta(pattern=WITHOUT_NUL)]


def _cut_title(title: str | None) -> str | None:
    """Surrounding whitespace dropped, a blank title is no title, longer than 255 characters cut to 255."""
    if title is None:
        return None
    return title.strip()[:TITLE_MAX] or None


class SessionCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /sessions``: both fields optional; an untitled session takes its first user message's."""

    title: Title | None = None
    agent_id: Id | None = None

    @property
    def clean_title(self) -> str | None:
        """The title to store (see ``_cut_title``)."""
        return _cut_title(self.title)


class SessionUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``PATCH /sessions/{session_id}``: the new title (null clears it)."""

    title: Title | None

    @property
    def clean_title(self) -> str | None:
        """The title to store (see ``_cut_title``)."""
        return _cut_title(self.title)
