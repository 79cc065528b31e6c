"""Queries of the sessions domain. They run inside the request's transaction, under RLS.

The tenant (and user) filters are also written into each query, not left to the policy
alone, so the planner uses the composite indexes as index conditions.
"""

from __future__ import annotations

from functools import cache
from uuid import UUID

import msgspec

from app.sessions.schemas import Order, SessionInfo, SessionListResponse, SortBy
from app.tables import Session

ACTIVE_WINDOW = "interval '24 hours'"


@cache
def _page_sql(by_user: bool, sort_by: SortBy, order: Order) -> str:
    """The page query: find the page's ids by index, then read only those sessions and their agents.

    The ids come from an index-only scan (sort key, ``session_id``, ``tenant_id`` and
    ``user_id`` are all in the index), so a deep ``offset`` skips index entries instead
    of reading every skipped session row.
    """
    where = "tenant_id = {} AND user_id = {}" if by_user else "tenant_id = {}"
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"{sort_by} {direction}, session_id {direction}"
    return f"""
        WITH ids AS (
            SELECT session_id
            FROM sessions
            WHERE {where}
            ORDER BY {sort}
            LIMIT {{}} OFFSET {{}}
        ), page AS (
            SELECT s.session_id, s.user_id, s.agent_id, s.title, s.created_at, s.updated_at,
                   s.message_count, s.last_message_at
            FROM ids JOIN sessions s ON s.session_id = ids.session_id
        )
        SELECT p.session_id, p.user_id, p.title, a.name AS agent_name,
               p.created_at, p.updated_at, p.message_count,
               coalesce(p.last_message_at, p.created_at) > now() - {ACTIVE_WINDOW} AS is_active
        FROM page p
        LEFT JOIN agent_configs a ON a.agent_id = p.agent_id
        ORDER BY p.{sort}
    """


@cache
def _count_sql(by_user: bool) -> str:
    """``total`` from the per-user counters the sessions trigger keeps: no session row is read."""
    where = "tenant_id = {} AND user_id = {}" if by_user else "tenant_id = {}"
    return f"SELECT coalesce(sum(sessions), 0) AS total FROM session_counts WHERE {where}"


@cache
def _list_sql(by_user: bool, sort_by: SortBy, order: Order) -> str:
    """Total and page in one round trip: a row per session, each with ``total``; one row of ``total`` alone
    when the page is empty. Placeholders: the filters (count), the filters again, limit, offset (page)."""
    direction = "DESC" if order == "desc" else "ASC"
    return f"""
        SELECT c.total, l.*
        FROM ({_count_sql(by_user)}) c
        LEFT JOIN ({_page_sql(by_user, sort_by, order)}) l ON true
        ORDER BY l.{sort_by} {direction}, l.session_id {direction}
    """


Statement = tuple[str, tuple[object, ...]]  # a Piccolo SQL template and its arguments


def list_statement(
    tenant_id: UUID, user_id: UUID | None, *, limit: int, offset: int, sort_by: SortBy, order: Order
) -> Statement:
    """The list query exactly as ``list_sessions`` sends it (the plan tests and the bench floor replay it)."""
    by_user = user_id is not None
    filters = (tenant_id, user_id) if by_user else (tenant_id,)
    return _list_sql(by_user, sort_by, order), (*filters, *filters, limit, offset)


async def list_sessions(
    tenant_id: UUID,
    user_id: UUID | None,
    *,
    limit: int,
    offset: int,
    sort_by: SortBy = "updated_at",
    order: Order = "desc",
) -> SessionListResponse:
    """A page of the tenant's sessions (of ``user_id`` only, when given), with the total."""
    sql, args = list_statement(tenant_id, user_id, limit=limit, offset=offset, sort_by=sort_by, order=order)
    rows = await Session.raw(sql, *args)
    total = int(rows[0]["total"])
    sessions = msgspec.convert([row for row in rows if row["session_id"] is not None], list[SessionInfo])
    return SessionListResponse(
        sessions=sessions,
        total=total,
        limit=limit,
        offset=offset,
        has_more=offset + len(sessions) < total,
    )


# One session as ``SessionInfo``, from a CTE ``s`` of sessions rows (a select, an insert or an update).
_INFO_SQL = f"""
    SELECT s.session_id, s.user_id, s.title, a.name AS agent_name,
           s.created_at, s.updated_at, s.message_count,
           coalesce(s.last_message_at, s.created_at) > now() - {ACTIVE_WINDOW} AS is_active
    FROM s
    LEFT JOIN agent_configs a ON a.tenant_id = s.tenant_id AND a.agent_id = s.agent_id
"""
# Reading content of someone else's session records it (``chat_record_read``, rls_policies/access_log.sql).
_GET_SQL = (
    "WITH s AS (SELECT * FROM sessions WHERE tenant_id = {} AND session_id = {}"
    " AND chat_record_read(tenant_id, session_id, user_id, 'session'))" + _INFO_SQL
)
_GET_MANY_SQL = (
    "WITH s AS (SELECT * FROM sessions WHERE tenant_id = {} AND session_id = ANY({})"
    " AND chat_record_read(tenant_id, session_id, user_id, 'events'))" + _INFO_SQL
)
_CREATE_SQL = (
    """WITH s AS (
        INSERT INTO sessions (tenant_id, user_id, agent_id, title, created_at, updated_at)
        VALUES ({}, {}, {}, {}, statement_timestamp(), statement_timestamp())
        RETURNING *
    )"""
    + _INFO_SQL
)
_UPDATE_SQL = (
    """WITH s AS (
        UPDATE sessions SET title = {}, updated_at = greatest(updated_at, clock_timestamp())
        WHERE tenant_id = {} AND session_id = {} AND user_id = {}
        RETURNING *
    )"""
    + _INFO_SQL
)


def _one(rows: list[dict[str, object]]) -> SessionInfo | None:
    return msgspec.convert(rows[0], SessionInfo) if rows else None


async def get_session(tenant_id: UUID, session_id: UUID) -> SessionInfo | None:
    """The session if the context's user may read it (own, or any of the tenant for an admin), else None.

    An admin's read of another user's session is recorded (``access_log``, action ``session``).
    """
    return _one(await Session.raw(_GET_SQL, tenant_id, session_id))


def get_many_statement(tenant_id: UUID, session_ids: list[UUID]) -> Statement:
    """The read of several sessions by id, exactly as ``get_sessions`` sends it."""
    return _GET_MANY_SQL, (tenant_id, session_ids)


async def get_sessions(tenant_id: UUID, session_ids: list[UUID]) -> list[SessionInfo]:
    """Those of ``session_ids`` that the context's user may read, in no particular order (live updates).

    An admin's read of another user's session is recorded (``access_log``, action ``events``).
    """
    sql, args = get_many_statement(tenant_id, session_ids)
    return msgspec.convert(await Session.raw(sql, *args), list[SessionInfo])


async def session_owner(tenant_id: UUID, session_id: UUID) -> UUID | None:
    """The owner of the session if the context's user may read it, else None."""
    rows = await Session.raw(
        "SELECT user_id FROM sessions WHERE tenant_id = {} AND session_id = {}", tenant_id, session_id
    )
    return rows[0]["user_id"] if rows else None


async def create_session(tenant_id: UUID, user_id: UUID, title: str | None, agent_id: UUID | None) -> SessionInfo:
    """Insert a session owned by ``user_id``; the database refuses another tenant's user or agent."""
    rows = await Session.raw(_CREATE_SQL, tenant_id, user_id, agent_id, title)
    return msgspec.convert(rows[0], SessionInfo)


async def update_title(tenant_id: UUID, session_id: UUID, user_id: UUID, title: str | None) -> SessionInfo | None:
    """Set the title of ``user_id``'s session (``updated_at`` moves); None when there is no such session."""
    return _one(await Session.raw(_UPDATE_SQL, title, tenant_id, session_id, user_id))


async def delete_session(tenant_id: UUID, session_id: UUID, user_id: UUID) -> bool:
    """Delete ``user_id``'s session and (by cascade) its messages; False when there is no such session."""
    rows = await Session.raw(
        "DELETE FROM sessions WHERE tenant_id = {} AND session_id = {} AND user_id = {} RETURNING session_id",
        tenant_id,
        session_id,
        user_id,
    )
    return bool(rows)
