"""Queries of the sessions domain. They run inside the request's transaction, under RLS.

The tenant (and user) filters are also written into each query, not left to the policy
alone, so the planner uses the composite indexes as index conditions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from uuid import UUID

import msgspec

from app.cursors import Position, cut_page
from app.sessions.schemas import Archived, ArchiveResult, Order, SessionInfo, SessionListResponse, SortBy
from app.tables import Session

ACTIVE_WINDOW = "interval '24 hours'"
Statement = tuple[str, tuple[object, ...]]  # a Piccolo SQL template and its arguments
_NAMED = re.compile(r"\$([a-z_]+)")


@cache
def _positional(template: str) -> tuple[str, tuple[str, ...]]:
    """A template with ``$name`` parameters as Piccolo's ``{}`` placeholders, and the names in their order."""
    return _NAMED.sub("{}", template), tuple(_NAMED.findall(template))


def _statement(template: str, values: dict[str, object]) -> Statement:
    sql, names = _positional(template)
    return sql, tuple(values[name] for name in names)


@dataclass(frozen=True)
class Filters:
    """Which sessions a list shows: one user's (``user_id``) or the tenant's, archived or not, pinned, agent."""

    user_id: UUID | None = None
    archived: Archived = "false"
    pinned: bool | None = None
    agent_id: UUID | None = None

    def bound(self) -> dict[str, object]:
        """The filters as a cursor binds them (see ``app.cursors``)."""
        return {"user_id": self.user_id, "archived": self.archived, "pinned": self.pinned, "agent_id": self.agent_id}

    def where(self) -> str:
        """The filters as SQL conditions (``$tenant``, ``$user``, ``$agent``); the flags are literals."""
        conditions = ["tenant_id = $tenant"]
        if self.user_id is not None:
            conditions.append("user_id = $user")
        if self.pinned is not None:
            conditions.append(f"pinned = {str(self.pinned).lower()}")
        if self.agent_id is not None:
            conditions.append("agent_id = $agent")
        return " AND ".join(conditions)


# ``total`` from the per-user counters (session_counts) for each (archived, pinned) filter.
_COUNTERS: dict[tuple[Archived, bool | None], str] = {
    ("all", None): "sessions",
    ("false", None): "sessions - archived",
    ("true", None): "archived",
    ("all", True): "pinned",
    ("false", True): "pinned - pinned_archived",
    ("true", True): "pinned_archived",
    ("all", False): "sessions - pinned",
    ("false", False): "sessions - archived - pinned + pinned_archived",
    ("true", False): "archived - pinned_archived",
}


@cache
def _count_sql(filters: Filters) -> str:
    """``total``: without ``agent_id``, from the counters the sessions trigger keeps (no session row is read);
    with it, an index-only count on (tenant_id, agent_id, archived)."""
    if filters.agent_id is None:
        where = "tenant_id = $tenant AND user_id = $user" if filters.user_id is not None else "tenant_id = $tenant"
        counter = _COUNTERS[filters.archived, filters.pinned]
        return f"SELECT coalesce(sum({counter}), 0) AS total FROM session_counts WHERE {where}"
    archived = "" if filters.archived == "all" else f" AND archived = {filters.archived}"
    return f"SELECT count(*) AS total FROM sessions WHERE {filters.where()}{archived}"


def keyset_sql(sort_by: SortBy, order: Order) -> str:
    """The rows after a cursor's position in the sort: ``(sort key, session_id)`` beyond ``($after_key, $after_id)``."""
    return f" AND ({sort_by}, session_id) {'<' if order == 'desc' else '>'} ($after_key, $after_id)"


def ids_sql(filters: Filters, sort_by: SortBy, order: Order, after: bool, condition: str = "") -> str:
    """The page's ``(session_id, sort key)`` in sort order, by the index led by (tenant_id[, user_id], archived).

    Each value of ``archived`` the filter takes walks its own range of the index; ``all``
    merges the two ranges (a Merge Append, each branch stopping at ``$window`` = offset +
    limit rows). ``condition`` (`` AND …``) narrows the rows further (search's probe).
    """
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"{sort_by} {direction}, session_id {direction}"
    keyset = keyset_sql(sort_by, order) if after else ""
    values = ["false", "true"] if filters.archived == "all" else [filters.archived]
    branches = [
        f"SELECT session_id, {sort_by} FROM sessions WHERE {filters.where()} AND archived = {value}{keyset}"
        f"{condition} ORDER BY {sort}"
        for value in values
    ]
    if len(branches) == 1:
        return f"{branches[0]} LIMIT $limit OFFSET $offset"
    return (
        " UNION ALL ".join(f"({branch} LIMIT $window)" for branch in branches)
        + f" ORDER BY {sort} LIMIT $limit OFFSET $offset"
    )


@cache
def _page_sql(filters: Filters, sort_by: SortBy, order: Order, after: bool) -> str:
    """The page query: find the page's ids by index, then read only those sessions and their agents.

    The ids (``ids_sql``) come from an index-only scan, so a deep ``offset`` skips index
    entries instead of session rows, and a cursor (``after``) starts the walk at its position.
    """
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"{sort_by} {direction}, session_id {direction}"
    ids = ids_sql(filters, sort_by, order, after)
    return f"""
        WITH ids AS ({ids}), page AS (
            SELECT s.session_id, s.user_id, s.agent_id, s.title, s.created_at, s.updated_at,
                   s.message_count, s.last_message_at, s.pinned, s.archived
            FROM ids JOIN sessions s ON s.session_id = ids.session_id
        )
        SELECT p.session_id, p.user_id, p.title, a.name AS agent_name,
               p.created_at, p.updated_at, p.message_count,
               coalesce(p.last_message_at, p.created_at) > now() - {ACTIVE_WINDOW} AS is_active,
               p.pinned, p.archived
        FROM page p
        LEFT JOIN agent_configs a ON a.agent_id = p.agent_id
        ORDER BY p.{sort}
    """


@cache
def _list_sql(filters: Filters, sort_by: SortBy, order: Order, after: bool) -> str:
    """Total and page in one round trip: a row per session, each with ``total``; one row of ``total`` alone
    when the page is empty."""
    direction = "DESC" if order == "desc" else "ASC"
    return f"""
        SELECT c.total, l.*
        FROM ({_count_sql(filters)}) c
        LEFT JOIN ({_page_sql(filters, sort_by, order, after)}) l ON true
        ORDER BY l.{sort_by} {direction}, l.session_id {direction}
    """


def _shape(filters: Filters) -> Filters:
    """The filters with their ids blanked (the SQL's shape, one cache entry per shape, not per id)."""
    blank = UUID(int=0)
    return Filters(
        user_id=None if filters.user_id is None else blank,
        archived=filters.archived,
        pinned=filters.pinned,
        agent_id=None if filters.agent_id is None else blank,
    )


def list_statement(
    tenant_id: UUID,
    filters: Filters,
    *,
    limit: int,
    offset: int,
    sort_by: SortBy,
    order: Order,
    after: Position | None = None,
) -> Statement:
    """The list query exactly as ``list_sessions`` sends it (the plan tests and the bench floor replay it).

    It asks for ``limit`` rows; ``list_sessions`` asks for one more, to know whether a next page exists.
    """
    template = _list_sql(_shape(filters), sort_by, order, after is not None)
    values: dict[str, object] = {
        "tenant": tenant_id,
        "user": filters.user_id,
        "agent": filters.agent_id,
        "limit": limit,
        "offset": offset,
        "window": limit + offset,
        "after_key": after[0] if after else None,
        "after_id": after[1] if after else None,
    }
    return _statement(template, values)


async def list_sessions(
    tenant_id: UUID,
    filters: Filters,
    *,
    limit: int,
    offset: int = 0,
    sort_by: SortBy = "updated_at",
    order: Order = "desc",
    after: Position | None = None,
    cursor_of: Callable[[Position], str],
) -> SessionListResponse:
    """A page of the sessions ``filters`` select, with the exact total.

    ``after`` (a cursor's position) starts the page after that row; ``cursor_of`` makes the
    ``next_cursor`` of the page's last row when another page follows.
    """
    sql, args = list_statement(
        tenant_id, filters, limit=limit + 1, offset=offset, sort_by=sort_by, order=order, after=after
    )
    rows = await Session.raw(sql, *args)
    total = int(rows[0]["total"])
    found = msgspec.convert([row for row in rows if row["session_id"] is not None], list[SessionInfo])
    sessions, next_cursor = cut_page(found, limit, lambda last: (getattr(last, sort_by), last.session_id), cursor_of)
    return SessionListResponse(
        sessions=sessions,
        total=total,
        limit=limit,
        offset=offset,
        has_more=next_cursor is not None if after else offset + len(sessions) < total,
        next_cursor=next_cursor,
    )


# One session as ``SessionInfo``, from a CTE ``s`` of sessions rows (a select, an insert or an update).
_INFO_SQL = f"""
    SELECT s.session_id, s.user_id, s.title, a.name AS agent_name,
           s.created_at, s.updated_at, s.message_count,
           coalesce(s.last_message_at, s.created_at) > now() - {ACTIVE_WINDOW} AS is_active,
           s.pinned, s.archived
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
# A new title moves ``updated_at``; pinned/archived alone do not (null: left as it is).
_UPDATE_SQL = (
    """WITH s AS (
        UPDATE sessions SET
            title = CASE WHEN {} THEN {} ELSE title END,
            updated_at = CASE WHEN {} THEN greatest(updated_at, clock_timestamp()) ELSE updated_at END,
            pinned = coalesce({}, pinned),
            archived = coalesce({}, archived)
        WHERE tenant_id = {} AND session_id = {} AND user_id = {}
        RETURNING *
    )"""
    + _INFO_SQL
)
_ARCHIVE_SQL = """
    WITH a AS (
        UPDATE sessions SET archived = true
        WHERE tenant_id = {} AND user_id = {} AND session_id = ANY({}) AND NOT archived
        RETURNING 1
    )
    SELECT count(*) AS archived FROM a
"""


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


@dataclass(frozen=True)
class Change:
    """What a PATCH sets: ``title`` only when ``set_title``; ``pinned``/``archived`` when not None."""

    set_title: bool = False
    title: str | None = None
    pinned: bool | None = None
    archived: bool | None = None


async def update_session(tenant_id: UUID, session_id: UUID, user_id: UUID, change: Change) -> SessionInfo | None:
    """Apply ``change`` to ``user_id``'s session (a title moves ``updated_at``); None when there is no such session."""
    return _one(
        await Session.raw(
            _UPDATE_SQL,
            change.set_title,
            change.title,
            change.set_title,
            change.pinned,
            change.archived,
            tenant_id,
            session_id,
            user_id,
        )
    )


async def archive_sessions(tenant_id: UUID, user_id: UUID, session_ids: list[UUID]) -> ArchiveResult:
    """Archive ``user_id``'s sessions among ``session_ids``; how many were not archived yet (others' are ignored)."""
    rows = await Session.raw(_ARCHIVE_SQL, tenant_id, user_id, session_ids)
    return ArchiveResult(archived=int(rows[0]["archived"]))


async def delete_session(tenant_id: UUID, session_id: UUID, user_id: UUID) -> bool:
    """Delete ``user_id``'s session and (by cascade) its messages; False when there is no such session."""
    rows = await Session.raw(
        "DELETE FROM sessions WHERE tenant_id = {} AND session_id = {} AND user_id = {} RETURNING session_id",
        tenant_id,
        session_id,
        user_id,
    )
    return bool(rows)
