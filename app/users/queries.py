"""Queries of the users domain (run inside the request's transaction)."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.tables import User
from app.users.schemas import UserInfo

# The guard's user lookup, on every request: plain SQL (Piccolo's select builder cost 76 µs
# a request to compose it). The benchmark's floor replays it.
USER_SQL = "SELECT user_id, tenant_id, email, display_name, role FROM users WHERE user_id = {}"


async def get_user(user_id: UUID) -> UserInfo | None:
    """The user ``user_id`` if visible in the current tenant context, else None."""
    rows = await User.raw(USER_SQL, user_id)
    return msgspec.convert(rows[0], UserInfo) if rows else None
