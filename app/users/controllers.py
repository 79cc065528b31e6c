"""HTTP routes of the users domain."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from app.auth.guards import GUARD_ERRORS
from app.inputs import OFFSET_MAX, Id
from app.users import queries
from app.users.schemas import UserInfo, UserListResponse


class MeController(Controller):
    """``/api/{tenant_id}/me``: who the token belongs to."""

    path = "/me"
    tags = ["users"]

    @get(
        "/",
        summary="The signed-in user",
        description="The token's user, with the role from the database.",
        raises=GUARD_ERRORS,
    )
    async def me(self, tenant_id: FromPath[Id], user: NamedDependency[UserInfo]) -> UserInfo:
        # tenant_id: declared so that the document calls it a UUID (the guard has checked it against the token).
        return user


class UserController(Controller):
    """``/api/{tenant_id}/users``: the tenant's users directory, for admins."""

    path = "/users"
    tags = ["users"]

    @get(
        "/",
        summary="The tenant's users",
        description="Admins only (a supporter: 403): a page of the tenant's users by display name, then id.",
        raises=GUARD_ERRORS,
    )
    async def list_users(
        self,
        tenant_id: FromPath[Id],
        user: NamedDependency[UserInfo],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1–100")] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="Users to skip, ≥ 0")] = 0,
    ) -> UserListResponse:
        if not user.is_admin:
            raise PermissionDeniedException(detail="only an admin may list the tenant's users")
        return await queries.list_users(tenant_id, limit=limit, offset=offset)
