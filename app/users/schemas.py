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


class DirectoryEntry(msgspec.Struct, frozen=True):
    """One user of the tenant, as the users directory lists them."""

    user_id: UUID
    email: str
    display_name: str
    role: str


class UserListResponse(msgspec.Struct, frozen=True):
    """A page of the tenant's users (by display name, then id); ``has_more`` = ``offset + len(users) < total``."""

    users: list[DirectoryEntry]
    total: int
    limit: int
    offset: int
    has_more: bool
