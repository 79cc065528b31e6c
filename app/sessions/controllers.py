"""HTTP routes of the sessions domain."""

from __future__ import annotations

from functools import partial
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, JSONBody, QueryParameter

from app.agents.queries import agent_exists
from app.auth.guards import GUARD_ERRORS
from app.cursors import CURSOR_MAX, bind_offset, cursor_key, make_cursor, read_cursor
from app.db.replica import READS_WRITE
from app.inputs import OFFSET_MAX, Id, body_error, invalid
from app.sessions import queries, search
from app.sessions.schemas import (
    Archived,
    ArchiveResult,
    Order,
    SessionArchive,
    SessionCreate,
    SessionInfo,
    SessionListResponse,
    SessionUpdate,
    SortBy,
)
from app.users.schemas import UserInfo

# A session id in the path: declared ``str`` in the route so that a malformed id reaches the
# handler's signature (400 naming ``session_id``) instead of failing route matching (404).
SESSION_PATH = "/{session_id:str}"
SessionId = FromPath[Id]
SESSION_ERRORS = [*GUARD_ERRORS, NotFoundException]  # GUARD_ERRORS has the 400 (one class per status)
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=CURSOR_MAX,
        description="`next_cursor` of the previous page, made under the same parameters (`limit` may change); "
        "excludes a non-zero `offset`. Malformed, altered or reused under other parameters: 400.",
    ),
]
# An admin's read of someone else's session writes ``access_log``: their reads run on the primary.
RECORDED = {READS_WRITE: "admin"}


def session_not_found() -> NotFoundException:
    """The one answer for a session that does not exist or that the caller may not read."""
    return NotFoundException(detail="session not found")


async def write_refused(tenant_id: UUID, session_id: UUID) -> HTTPException:
    """Why a write matched no session of the caller: 403 if they can read it (an admin of the tenant), else 404.

    Writes are restricted to the caller's own sessions in the query itself (and by RLS), so the
    common path needs no prior read; only a refused write asks whose session it was.
    """
    if await queries.session_owner(tenant_id, session_id) is None:
        return session_not_found()
    return PermissionDeniedException(detail="only the session's owner may change it")


class SessionController(Controller):
    """``/api/{tenant_id}/sessions``: the chat sessions of the signed-in user (or, for an admin, the tenant)."""

    path = "/sessions"
    tags = ["sessions"]

    @get(
        "/",
        summary="List sessions",
        description=(
            "A page of sessions, newest first by default. A supporter sees their own sessions and may "
            "name only themselves as `user_id` (another id: 403). An admin sees the whole tenant, or one "
            "user's sessions with `user_id` (a user outside the tenant simply has none). The filters "
            "`archived`, `pinned` and `agent_id` combine; `total` counts exactly what they select. "
            "`next_cursor` (null on the last page) continues with keyset paging: with `cursor`, "
            "`offset` is 0 and `has_more` means `next_cursor` is not null. An admin's search hit on another "
            "user's session is recorded in the access log (action `search`)."
        ),
        raises=GUARD_ERRORS,
        opt=RECORDED,
    )
    async def list_sessions(
        self,
        tenant_id: FromPath[Id],
        user: NamedDependency[UserInfo],
        state: State,
        user_id: Annotated[Id | None, QueryParameter(description="Only this user's sessions")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1–100")] = 10,
        offset: Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="Rows to skip, ≥ 0")] = 0,
        sort_by: Annotated[SortBy, QueryParameter(description="Sort key")] = "updated_at",
        order: Annotated[Order, QueryParameter(description="Sort direction")] = "desc",
        archived: Annotated[
            Archived, QueryParameter(description="`false`: not archived (default) · `true`: archived · `all`: both")
        ] = "false",
        pinned: Annotated[
            bool | None, QueryParameter(description="`true`: only pinned · `false`: only not pinned · omitted: both")
        ] = None,
        agent_id: Annotated[
            Id | None, QueryParameter(description="Only this agent's sessions (not an agent of the tenant: none)")
        ] = None,
        cursor: Cursor = None,
        q: Annotated[
            str | None,
            QueryParameter(
                description="Search, 1–200 characters after trimming: sessions whose title, or one single message, "
                "has a word beginning with each word of `q` (words: runs of letters and digits; case-insensitive). "
                "`total` is exact up to 1,000, then 1,000 with `total_capped`; each hit has its `snippet`."
            ),
        ] = None,
    ) -> SessionListResponse:
        owner: UUID | None
        if user.is_admin:
            owner = user_id
        elif user_id is None or user_id == user.user_id:
            owner = user.user_id
        else:
            raise PermissionDeniedException(detail="a supporter may only list their own sessions")
        bind_offset(cursor, offset)
        filters = queries.Filters(user_id=owner, archived=archived, pinned=pinned, agent_id=agent_id)
        bound = {"tenant_id": tenant_id, **filters.bound(), "sort_by": sort_by, "order": order}
        terms = search.parse_q(q) if q is not None else None
        if terms is not None:
            bound["q"] = terms
        key = cursor_key(state.settings)
        after = read_cursor(key, bound, cursor) if cursor is not None else None
        cursor_of = partial(make_cursor, key, bound)
        if terms is not None:
            return await search.search_sessions(
                tenant_id,
                filters,
                terms,
                limit=limit,
                offset=offset,
                sort_by=sort_by,
                order=order,
                after=after,
                cursor_of=cursor_of,
            )
        return await queries.list_sessions(
            tenant_id,
            filters,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            order=order,
            after=after,
            cursor_of=cursor_of,
        )

    @post(
        "/",
        summary="Create a session",
        description=(
            "A new session owned by the caller; the body may be omitted. `title` is optional (over 255 "
            "characters it is cut to 255; without one the first user message titles the session); "
            "`agent_id` must be an agent of the tenant."
        ),
        raises=GUARD_ERRORS,
    )
    async def create_session(
        self, tenant_id: FromPath[Id], user: NamedDependency[UserInfo], data: JSONBody[SessionCreate | None] = None
    ) -> SessionInfo:
        data = data or SessionCreate()
        if data.agent_id is not None and not await agent_exists(tenant_id, data.agent_id):
            raise invalid("agent_id", "is not an agent of this tenant", "body")
        return await queries.create_session(tenant_id, user.user_id, data.clean_title, data.agent_id)

    @post(
        "/archive",
        status_code=200,
        summary="Archive sessions",
        description=(
            "Archive the caller's own sessions among `session_ids` (1–100 distinct ids) in one transaction; "
            "`archived` counts those archived now. Ids of sessions the caller does not own, or that do not "
            "exist, are ignored."
        ),
        raises=GUARD_ERRORS,
    )
    async def archive_sessions(
        self, tenant_id: FromPath[Id], user: NamedDependency[UserInfo], data: JSONBody[SessionArchive]
    ) -> ArchiveResult:
        if len(set(data.session_ids)) < len(data.session_ids):
            raise invalid("session_ids", "must not name a session twice", "body")
        return await queries.archive_sessions(tenant_id, user.user_id, list(data.session_ids))

    @get(
        SESSION_PATH,
        summary="Get a session",
        description=(
            "The session; 404 when it does not exist or belongs to another user or tenant. An admin's read of "
            "another user's session is recorded in the access log (action `session`)."
        ),
        raises=SESSION_ERRORS,
        opt=RECORDED,
    )
    async def get_session(self, tenant_id: FromPath[Id], session_id: SessionId) -> SessionInfo:
        session = await queries.get_session(tenant_id, session_id)
        if session is None:
            raise session_not_found()
        return session

    @patch(
        SESSION_PATH,
        summary="Change a session",
        description=(
            "Set any non-empty subset of `title` (over 255 characters it is cut to 255; null or blank clears it; "
            "`updated_at` moves), `pinned` and `archived` (these alone leave `updated_at` as it is); `{}`: 400. "
            "Only the owner may: an admin gets 403 for another user's session of the tenant, everyone else 404."
        ),
        raises=SESSION_ERRORS,
    )
    async def update_session(
        self,
        tenant_id: FromPath[Id],
        session_id: SessionId,
        user: NamedDependency[UserInfo],
        data: JSONBody[SessionUpdate],
    ) -> SessionInfo:
        if data.is_empty:
            raise body_error("must set at least one of title, pinned, archived")
        change = queries.Change(
            set_title=data.title is not msgspec.UNSET,
            title=data.clean_title,
            pinned=None if isinstance(data.pinned, msgspec.UnsetType) else data.pinned,
            archived=None if isinstance(data.archived, msgspec.UnsetType) else data.archived,
        )
        session = await queries.update_session(tenant_id, session_id, user.user_id, change)
        if session is None:
            raise await write_refused(tenant_id, session_id)
        return session

    @delete(
        SESSION_PATH,
        summary="Delete a session",
        description=(
            "Delete the session and its messages. Only the owner may: an admin gets 403 for another user's "
            "session of the tenant, everyone else 404."
        ),
        raises=SESSION_ERRORS,
    )
    async def delete_session(
        self, tenant_id: FromPath[Id], session_id: SessionId, user: NamedDependency[UserInfo]
    ) -> None:
        if not await queries.delete_session(tenant_id, session_id, user.user_id):
            raise await write_refused(tenant_id, session_id)
