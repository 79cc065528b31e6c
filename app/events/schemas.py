"""Shapes of the live-updates domain: what a database notification says, and the ``session_deleted`` event."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import msgspec

Kind = Literal["session", "session_deleted", "message"]


class Notification(msgspec.Struct, frozen=True):
    """What the triggers of ``rls_policies/`` publish on ``chat_events`` at COMMIT: ids only.

    It only says which streams to look for (the tenant and the session's owner); every event is
    built from a row read again under the stream's own context, never from these fields.
    """

    kind: Kind
    tenant_id: UUID
    session_id: UUID
    user_id: UUID  # the session's owner
    message_id: UUID | None = None


class SessionDeleted(msgspec.Struct, frozen=True):
    """Data of the ``session_deleted`` event."""

    session_id: UUID


class StreamEvent(msgspec.Struct, frozen=True):
    """One event of the stream, as an SSE client parses it (comment lines, the keep-alives, are not events).

    ``data`` is JSON: a ``SessionInfo`` (``session``), ``{session_id}`` (``session_deleted``), a
    ``MessageInfo`` (``message``) or ``{}`` (``resync``).
    """

    event: Literal["session", "session_deleted", "message", "resync"]
    data: str
    id: str
