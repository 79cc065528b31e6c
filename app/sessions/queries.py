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
    """The page query: page the sessions by index first, then join only the page's agents."""
    where = "tenant_id = {} AND user_id = {}" if by_user else "tenant_id = {}"
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"{sort_by} {direction}, session_id {direction}"
    return f"""
        WITH page AS (
            SELECT session_id, user_id, agent_id, title, created_at, updated_at,
                   message_count, last_message_at
            FROM sessions
            WHERE {where}
            ORDER BY {sort}
            LIMIT {{}} OFFSET {{}}
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
    where = "tenant_id = {} AND user_id = {}" if by_user else "tenant_id = {}"
    return f"SELECT count(*) AS total FROM sessions WHERE {where}"


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
    by_user = user_id is not None
    filters = (tenant_id, user_id) if by_user else (tenant_id,)
    rows = await Session.raw(_page_sql(by_user, sort_by, order), *filters, limit, offset)
    total_rows = await Session.raw(_count_sql(by_user), *filters)
    total = int(total_rows[0]["total"])
    sessions = msgspec.convert(rows, list[SessionInfo])
    return SessionListResponse(
        sessions=sessions,
        total=total,
        limit=limit,
        offset=offset,
        has_more=offset + len(sessions) < total,
    )
