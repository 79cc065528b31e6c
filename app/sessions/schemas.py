"""Request and response shapes of the sessions domain (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

import msgspec

from app.inputs import WITHOUT_NUL, Id

SortBy = Literal["updated_at", "created_at"]
Order = Literal["desc", "asc"]
Archived = Literal["false", "true", "all"]


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
    pinned: bool
    archived: bool
    snippet: str | None = None  # in search results only: the text around the first matched word


class SessionListResponse(msgspec.Struct, frozen=True):
    """A page of sessions; ``has_more`` = ``offset + len(sessions) < total`` (with a cursor: ``next_cursor`` is set).

    ``next_cursor`` continues after this page (null on the last page); ``total_capped`` is true only
    for a search whose ``total`` was capped.
    """

    sessions: list[SessionInfo]
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None = None
    total_capped: bool = False


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
    """Body of ``PATCH /sessions/{session_id}``: any non-empty subset of title (null clears it), pinned, archived."""

    MIN_FIELDS: ClassVar[int] = 1  # documented as minProperties (app/openapi.py); the route refuses {}
    title: Title | msgspec.UnsetType | None = msgspec.UNSET
    pinned: bool | msgspec.UnsetType = msgspec.UNSET
    archived: bool | msgspec.UnsetType = msgspec.UNSET

    @property
    def is_empty(self) -> bool:
        """True when the body sets nothing (``{}``)."""
        return all(value is msgspec.UNSET for value in (self.title, self.pinned, self.archived))

    @property
    def clean_title(self) -> str | None:
        """The title to store (see ``_cut_title``); only meaningful when ``title`` is set."""
        return None if isinstance(self.title, msgspec.UnsetType) else _cut_title(self.title)


ARCHIVE_MAX = 100


class SessionArchive(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /sessions/archive``: 1 to 100 distinct session ids."""

    session_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=ARCHIVE_MAX)]


class ArchiveResult(msgspec.Struct, frozen=True):
    """How many of the caller's sessions ``POST /sessions/archive`` archived now (already archived: not counted)."""

    archived: int
