"""Queries of the privacy domain: the access log's pages and the export's stream (under RLS).

An export is one statement on a server-side cursor, in the request's transaction: the
sessions of one user, each recorded when an admin reads someone else's
(``chat_record_read``, action ``export``), joined with their messages in order. It is
written out as NDJSON a row at a time, so memory stays flat whatever the size of a
session: a line is opened with the session's JSON and closed after its last message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from uuid import UUID

import asyncpg
import msgspec

from app.messages.schemas import MessageInfo
from app.privacy.schemas import AccessLogEntry, AccessLogResponse
from app.sessions.queries import _INFO_SQL
from app.sessions.schemas import SessionInfo
from app.tables import AccessLog

_ENTRY = "entry_id, tenant_id, session_id, owner_id, reader_id, action, at"


@cache
def _page_sql(by_owner: bool, by_session: bool) -> str:
    """Total and page in one round trip (a row of ``total`` alone when the page is empty)."""
    where = (
        "tenant_id = {}" + (" AND owner_id = {}" if by_owner else "") + (" AND session_id = {}" if by_session else "")
    )
    return f"""
        SELECT c.total, l.*
        FROM (SELECT count(*) AS total FROM access_log WHERE {where}) c
        LEFT JOIN (
            SELECT {_ENTRY} FROM access_log WHERE {where}
            ORDER BY at DESC, entry_id DESC LIMIT {{}} OFFSET {{}}
        ) l ON true
        ORDER BY l.at DESC, l.entry_id DESC
    """


async def list_entries(
    tenant_id: UUID, owner_id: UUID | None, session_id: UUID | None, *, limit: int, offset: int
) -> AccessLogResponse:
    """A page of the entries the context's user may see (only ``owner_id``'s sessions, when given), newest first."""
    filters = (tenant_id, *(v for v in (owner_id, session_id) if v is not None))
    sql = _page_sql(owner_id is not None, session_id is not None)
    rows = await AccessLog.raw(sql, *filters, *filters, limit, offset)
    total = int(rows[0]["total"])
    entries = msgspec.convert([row for row in rows if row["entry_id"] is not None], list[AccessLogEntry])
    return AccessLogResponse(
        entries=entries, total=total, limit=limit, offset=offset, has_more=offset + len(entries) < total
    )


# Session columns as SessionInfo (``_INFO_SQL`` over ``s``), then each message as ``m_*`` (none: NULLs).
_EXPORT_SQL = f"""
    WITH s AS (
        SELECT * FROM sessions
        WHERE tenant_id = $1 AND user_id = $2 AND chat_record_read(tenant_id, session_id, user_id, 'export')
    ), info AS ({_INFO_SQL})
    SELECT info.*, m.message_id AS m_message_id, m.session_id AS m_session_id, m.role AS m_role,
           m.content AS m_content, m.created_at AS m_created_at
    FROM info
    LEFT JOIN LATERAL (
        SELECT message_id, session_id, role, content, created_at FROM messages
        WHERE tenant_id = $1 AND session_id = info.session_id
        ORDER BY created_at, message_id
    ) m ON true
    ORDER BY info.created_at, info.session_id, m.created_at, m.message_id
"""
EXPORT_PREFETCH = 200  # rows per round trip of the cursor: at most 200 messages (≤ 6.4 MB of text) in memory
CHUNK_BYTES = 1 << 16  # what the stream sends at once
_SESSION_FIELDS = SessionInfo.__struct_fields__
_MESSAGE_FIELDS = MessageInfo.__struct_fields__


async def open_export(connection: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> AsyncIterator[bytes]:
    """NDJSON of ``user_id``'s sessions that the context's user may read, in chunks of about 64 KB.

    Each line is ``SessionInfo`` with ``messages: [MessageInfo]`` (oldest first), sessions
    oldest first. Runs on ``connection``, in the request's transaction. The first rows are
    fetched here, before anything is sent: every exported session is recorded by then, and a
    recording that fails raises now (the request fails) instead of in the middle of the stream.
    """
    cursor = await connection.cursor(_EXPORT_SQL, tenant_id, user_id)
    rows = await cursor.fetch(EXPORT_PREFETCH)
    return _ndjson(cursor, rows)


async def _ndjson(cursor: asyncpg.cursor.Cursor[asyncpg.Record], rows: list[asyncpg.Record]) -> AsyncIterator[bytes]:
    encode = msgspec.json.encode
    buffer = bytearray()
    current: UUID | None = None
    first = True
    while rows:
        for row in rows:
            if row["session_id"] != current:
                if current is not None:
                    buffer += b"]}\n"
                current, first = row["session_id"], True
                record = dict(row)  # a field the query does not select takes its default (``snippet``)
                session = msgspec.convert({k: record[k] for k in _SESSION_FIELDS if k in record}, SessionInfo)
                buffer += encode(session)[:-1] + b',"messages":['
            if row["m_message_id"] is not None:
                message = msgspec.convert({k: row["m_" + k] for k in _MESSAGE_FIELDS}, MessageInfo)
                buffer += encode(message) if first else b"," + encode(message)
                first = False
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
        rows = await cursor.fetch(EXPORT_PREFETCH) if len(rows) == EXPORT_PREFETCH else []
    if current is not None:
        buffer += b"]}\n"
    if buffer:
        yield bytes(buffer)
