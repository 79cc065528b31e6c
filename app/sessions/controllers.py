"""HTTP routes of the sessions domain."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from app.auth.guards import GUARD_ERRORS
from app.sessions import queries
from app.sessions.schemas import Order, SessionListResponse, SortBy
from app.users.schemas import UserInfo


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
            "user's sessions with `user_id` (a user outside the tenant simply has none)."
        ),
        raises=GUARD_ERRORS,
    )
    async def list_sessions(
        self,
        tenant_id: FromPath[UUID],
        user: NamedDependency[UserInfo],
        user_id: Annotated[UUID | None, QueryParameter(description="Only this user's sessions")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1–100")] = 10,
        offset: Annotated[int, QueryParameter(ge=0, le=2**63 - 1, description="Rows to skip, ≥ 0")] = 0,
        sort_by: Annotated[SortBy, QueryParameter(description="Sort key")] = "updated_at",
        order: Annotated[Order, QueryParameter(description="Sort direction")] = "desc",
    ) -> SessionListResponse:
        if user.is_admin:
            owner = user_id
        elif user_id is None or user_id == user.user_id:
            owner = user.user_id
        else:
            raise PermissionDeniedException(detail="a supporter may only list their own sessions")
        return await queries.list_sessions(tenant_id, owner, limit=limit, offset=offset, sort_by=sort_by, order=order)
