"""Queries of the users domain (run inside the request's transaction)."""

from __future__ import annotations

from uuid import UUID

import msgspec
from piccolo.query.methods.select import Select

from app.tables import User
from app.users.schemas import UserInfo


def user_query(user_id: UUID) -> Select[User]:
    """The query behind ``get_user`` (the benchmark replays its SQL)."""
    return User.select(User.user_id, User.tenant_id, User.email, User.display_name, User.role).where(
        User.user_id == user_id
    )


async def get_user(user_id: UUID) -> UserInfo | None:
    """The user ``user_id`` if visible in the current tenant context, else None."""
    rows = await user_query(user_id)
    return msgspec.convert(rows[0], UserInfo) if rows else None
