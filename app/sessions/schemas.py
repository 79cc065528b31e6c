"""Request and response shapes of the sessions domain (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

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


class SessionListResponse(msgspec.Struct, frozen=True):
    """A page of sessions; ``has_more`` = ``offset + len(sessions) < total``."""

    sessions: list[SessionInfo]
    total: int
    limit: int
    offset: int
    has_more: bool
