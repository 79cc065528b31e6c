"""Queries of the users domain (run inside the request's transaction)."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.tables import User
from app.users.schemas import UserInfo


async def get_user(user_id: UUID) -> UserInfo | None:
    """The user ``user_id`` if visible in the current tenant context, else None."""
    rows = await User.select(User.user_id, User.tenant_id, User.email, User.display_name, User.role).where(
        User.user_id == user_id
    )
    return msgspec.convert(rows[0], UserInfo) if rows else None
