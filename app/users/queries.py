"""Queries of the users domain (run inside the request's transaction, under RLS)."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.tables import User
from app.users.schemas import DirectoryEntry, UserListResponse

# Total and page in one round trip (one row of ``total`` alone when the page is empty); the page
# walks the (tenant_id, display_name, user_id) index.
_DIRECTORY_SQL = """
    SELECT c.total, u.user_id, u.email, u.display_name, u.role
    FROM (SELECT count(*) AS total FROM users WHERE tenant_id = {}) c
    LEFT JOIN (
        SELECT user_id, email, display_name, role FROM users WHERE tenant_id = {}
        ORDER BY display_name, user_id LIMIT {} OFFSET {}
    ) u ON true
    ORDER BY u.display_name, u.user_id
"""


async def list_users(tenant_id: UUID, *, limit: int, offset: int) -> UserListResponse:
    """A page of the tenant's users by display name, with the total."""
    rows = await User.raw(_DIRECTORY_SQL, tenant_id, tenant_id, limit, offset)
    total = int(rows[0]["total"])
    users = msgspec.convert([row for row in rows if row["user_id"] is not None], list[DirectoryEntry])
    return UserListResponse(users=users, total=total, limit=limit, offset=offset, has_more=offset + len(users) < total)
