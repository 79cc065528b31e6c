"""Queries of the messages domain (run inside the request's transaction, under RLS).

The session's ``message_count`` is the history's total: the ``messages_counters``
trigger keeps it exact in the writing transaction, so the history is never counted.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from uuid import UUID

import asyncpg
import msgspec

from app.cursors import Position, cut_page
from app.messages.schemas import MessageInfo, MessageListResponse
from app.sessions.schemas import Order
from app.tables import Message


# The session (not visible: no row) with one page of its messages, oldest first (``asc``) or
# newest first (``desc``). The page names the session by value, not through ``s``: the planner
# then walks the (session_id, created_at, message_id) index in order (backwards for ``desc``)
# and stops at the limit (0.3 ms vs 1.3 ms at offset 0 of 10,000 messages; 7.6 ms vs 15 ms at
# offset 9,950). A cursor's position ``(created_at, message_id)`` is an index condition too.
# An admin's read of another user's session is recorded (``chat_record_read``: ``access_log``, action ``messages``).
@cache
def _page_sql(order: Order, after: bool) -> str:
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"created_at {direction}, message_id {direction}"
    keyset = f"AND (created_at, message_id) {'<' if order == 'desc' else '>'} ({{}}, {{}})" if after else ""
    return f"""
    SELECT s.message_count AS total, m.message_id, m.session_id, m.role, m.content, m.created_at
    FROM sessions s
    LEFT JOIN LATERAL (
        SELECT message_id, session_id, role, content, created_at
        FROM messages
        WHERE tenant_id = {{}} AND session_id = {{}} {keyset}
        ORDER BY {sort}
        LIMIT {{}} OFFSET {{}}
    ) m ON true
    WHERE s.tenant_id = {{}} AND s.session_id = {{}}
      AND chat_record_read(s.tenant_id, s.session_id, s.user_id, 'messages')
    ORDER BY m.{sort}
"""


# Inserts only into a session of the context's user (RLS would refuse any other; this matches none).
# The message carries the session's owner, as the foreign key to the session requires.
_ADD_SQL = """
    INSERT INTO messages (tenant_id, session_id, user_id, role, content)
    SELECT tenant_id, session_id, user_id, {}, {} FROM sessions
    WHERE tenant_id = {} AND session_id = {} AND user_id = {}
    RETURNING message_id, session_id, role, content, created_at
"""

# Messages by id with their session's owner (live updates: a stream sends a message only to whoever
# follows that owner). The primary key finds each; the policies decide which the reader may see.
_GET_MANY_SQL = """
    SELECT user_id, message_id, session_id, role, content, created_at
    FROM messages
    WHERE tenant_id = {} AND message_id = ANY({})
      AND chat_record_read(tenant_id, session_id, user_id, 'events')
"""


Statement = tuple[str, tuple[object, ...]]  # a Piccolo SQL template and its arguments


def history_statement(
    tenant_id: UUID, session_id: UUID, *, limit: int, offset: int, order: Order = "asc", after: Position | None = None
) -> Statement:
    """The history query exactly as ``list_messages`` sends it (the plan tests and the bench floor replay it).

    It asks for ``limit`` rows; ``list_messages`` asks for one more, to know whether a next page exists.
    """
    keyset = after or ()
    return _page_sql(order, after is not None), (tenant_id, session_id, *keyset, limit, offset, tenant_id, session_id)


def add_statement(tenant_id: UUID, session_id: UUID, user_id: UUID, role: str, content: str) -> Statement:
    """The insert exactly as ``add_message`` sends it."""
    return _ADD_SQL, (role, content, tenant_id, session_id, user_id)


def get_many_statement(tenant_id: UUID, message_ids: list[UUID]) -> Statement:
    """The read of several messages by id, exactly as ``get_messages`` sends it."""
    return _GET_MANY_SQL, (tenant_id, message_ids)


async def get_messages(tenant_id: UUID, message_ids: list[UUID]) -> list[tuple[UUID, MessageInfo]]:
    """Those of ``message_ids`` that the context's user may read, each with its session's owner, in no order."""
    sql, args = get_many_statement(tenant_id, message_ids)
    rows = await Message.raw(sql, *args)
    return [(row["user_id"], msgspec.convert(row, MessageInfo)) for row in rows]


async def list_messages(
    tenant_id: UUID,
    session_id: UUID,
    *,
    limit: int,
    offset: int = 0,
    order: Order = "asc",
    after: Position | None = None,
    cursor_of: Callable[[Position], str],
) -> MessageListResponse | None:
    """A page of the session's history in ``order`` (after ``after``, a cursor's position); None when the
    session is not visible. ``cursor_of`` makes the ``next_cursor`` of the last message when more follow."""
    sql, args = history_statement(tenant_id, session_id, limit=limit + 1, offset=offset, order=order, after=after)
    rows = await Message.raw(sql, *args)
    if not rows:
        return None
    total = int(rows[0]["total"])
    found = msgspec.convert([row for row in rows if row["message_id"] is not None], list[MessageInfo])
    messages, next_cursor = cut_page(found, limit, lambda last: (last.created_at, last.message_id), cursor_of)
    return MessageListResponse(
        messages=messages,
        total=total,
        limit=limit,
        offset=offset,
        has_more=next_cursor is not None if after else offset + len(messages) < total,
        next_cursor=next_cursor,
    )


class SessionDeletedError(Exception):
    """The session was deleted by a concurrent transaction while the message was being added."""


async def add_message(tenant_id: UUID, session_id: UUID, user_id: UUID, role: str, content: str) -> MessageInfo | None:
    """Append a message to ``user_id``'s session (None when there is no such session).

    The trigger counts it, moves the session's ``updated_at`` and may title the session.
    Raises ``SessionDeletedError`` when a concurrent DELETE of the session commits first.
    """
    sql, args = add_statement(tenant_id, session_id, user_id, role, content)
    try:
        rows = await Message.raw(sql, *args)
    except asyncpg.ForeignKeyViolationError as error:
        raise SessionDeletedError from error
    return msgspec.convert(rows[0], MessageInfo) if rows else None
