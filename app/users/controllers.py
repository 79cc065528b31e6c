"""HTTP routes of the users domain."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from app.auth.guards import GUARD_ERRORS
from app.users.schemas import UserInfo


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
    async def me(self, user: NamedDependency[UserInfo]) -> UserInfo:
        return user
