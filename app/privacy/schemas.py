"""Response shapes of the privacy domain (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from app.messages.schemas import MessageInfo
from app.sessions.schemas import SessionInfo

Action = Literal["session", "messages", "events", "export", "search"]


class AccessLogEntry(msgspec.Struct, frozen=True):
    """One read by ``reader_id`` (an admin) of ``owner_id``'s session, in the same transaction as the read."""

    entry_id: UUID
    tenant_id: UUID
    session_id: UUID
    owner_id: UUID
    reader_id: UUID
    action: Action
    at: datetime


class AccessLogResponse(msgspec.Struct, frozen=True):
    """A page of entries, newest first; ``has_more`` = ``offset + len(entries) < total``."""

    entries: list[AccessLogEntry]
    total: int
    limit: int
    offset: int
    has_more: bool


class ExportLine(SessionInfo, frozen=True, kw_only=True):
    """One line of an export: the session as ``SessionInfo``, with its messages oldest first.

    Keyword-only: ``messages`` follows ``SessionInfo.snippet``, which has a default.
    """

    messages: list[MessageInfo]
