"""HTTP routes of the users domain."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.auth.guards import GUARD_ERRORS
from app.inputs import Id
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
    async def me(self, tenant_id: FromPath[Id], user: NamedDependency[UserInfo]) -> UserInfo:
        # tenant_id: declared so that the document calls it a UUID (the guard has checked it against the token).
        return user
