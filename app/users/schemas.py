"""Response shapes of the users domain."""

from __future__ import annotations

from uuid import UUID

import msgspec


class UserInfo(msgspec.Struct, frozen=True):
    """The signed-in user, as ``GET /api/{tenant_id}/me`` answers it."""

    user_id: UUID
    tenant_id: UUID
    email: str
    display_name: str
    role: str

    @property
    def is_admin(self) -> bool:
        """True for a tenant admin (reads the whole tenant)."""
        return self.role == "admin"
