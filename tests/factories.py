"""Test data written as the owner role, and tokens for its users."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt

AGENT_NAMES = ("SupervisorAgent", "GuidelineAgent", "DebtAgent", "ShipmentAgent")


def make_token(secret: str, user_id: uuid.UUID, tenant_id: uuid.UUID, /, ttl: int = 600, **claims: Any) -> str:
    """An HS256 token for ``user_id`` in ``tenant_id`` (extra claims override the defaults)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": str(user_id), "tenant_id": str(tenant_id), "iat": now, "exp": now + ttl}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def other_spellings(value: uuid.UUID) -> dict[str, str]:
    """Other spellings of one UUID that Python's ``uuid.UUID`` reads as the same id (the API refuses them)."""
    text = str(value)
    return {
        "fullwidth digits": "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text),
        "arabic-indic digits": "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in text),
        "no hyphens": value.hex,
        "braces": "{" + text + "}",
        "urn": f"urn:uuid:{text}",
    }


@dataclass
class TestUser:
    """A user of a test tenant, with a valid token."""

    __test__ = False

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this user."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TestTenant:
    """A test tenant: an admin, two supporters, four agents and some sessions."""

    __test__ = False

    tenant_id: uuid.UUID
    name: str
    admin: TestUser
    alice: TestUser
    bob: TestUser
    agents: dict[str, uuid.UUID]
    sessions: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    def path(self, rest: str = "sessions") -> str:
        """``/api/{tenant_id}/{rest}``"""
        return f"/api/{self.tenant_id}/{rest}"

    @property
    def all_session_ids(self) -> set[uuid.UUID]:
        """Every session id of the tenant."""
        return {s for ids in self.sessions.values() for s in ids}


@dataclass
class World:
    """Two tenants that must never see each other."""

    a: TestTenant
    b: TestTenant
    secret: str


async def create_tenant(owner: asyncpg.Pool, name: str | None = None) -> uuid.UUID:
    """Insert a tenant; return its id."""
    tenant_id = uuid.uuid4()
    await owner.execute(
        "INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)", tenant_id, name or f"tenant-{tenant_id.hex[:10]}"
    )
    return tenant_id


async def create_user(
    owner: asyncpg.Pool, tenant_id: uuid.UUID, role: str, secret: str, email: str | None = None
) -> TestUser:
    """Insert a user of ``tenant_id``; return it with a valid token."""
    user_id = uuid.uuid4()
    email = email or f"{role}-{user_id.hex[:8]}@example.test"
    await owner.execute(
        "INSERT INTO users (user_id, tenant_id, email, display_name, role) VALUES ($1, $2, $3, $4, $5)",
        user_id,
        tenant_id,
        email,
        email.split("@")[0],
        role,
    )
    return TestUser(user_id, tenant_id, email, role, make_token(secret, user_id, tenant_id))


async def create_session(
    owner: asyncpg.Pool,
    user: TestUser,
    *,
    title: str | None = None,
    agent_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> uuid.UUID:
    """Insert a session owned by ``user``; return its id."""
    created_at = created_at or datetime.now(UTC)
    return await owner.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO sessions (tenant_id, user_id, agent_id, title, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING session_id""",
        user.tenant_id,
        user.user_id,
        agent_id,
        title,
        created_at,
        updated_at or created_at,
    )


async def add_message(
    owner: asyncpg.Pool,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    content: str = "hello",
    *,
    role: str = "user",
    created_at: datetime | None = None,
) -> uuid.UUID:
    """Insert a message (the trigger keeps the session's counters); return its id."""
    return await owner.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO messages (session_id, tenant_id, user_id, role, content, created_at)
           SELECT $1, $2, s.user_id, $3, $4, coalesce($5, clock_timestamp())
           FROM sessions s WHERE s.session_id = $1
           RETURNING message_id""",
        session_id,
        tenant_id,
        role,
        content,
        created_at,
    )


async def make_tenant(owner: asyncpg.Pool, secret: str, label: str) -> TestTenant:
    """A tenant with an admin, supporters alice (3 sessions) and bob (2), the admin with 1 session."""
    tenant_id = await create_tenant(owner, f"{label}-{uuid.uuid4().hex[:10]}")
    agents = {}
    for name in AGENT_NAMES:
        agents[name] = await owner.fetchval(
            "INSERT INTO agent_configs (tenant_id, name, description) VALUES ($1, $2, $3) RETURNING agent_id",
            tenant_id,
            name,
            f"{name} of {label}",
        )
    tenant = TestTenant(
        tenant_id=tenant_id,
        name=label,
        admin=await create_user(owner, tenant_id, "admin", secret),
        alice=await create_user(owner, tenant_id, "supporter", secret),
        bob=await create_user(owner, tenant_id, "supporter", secret),
        agents=agents,
    )
    now = datetime.now(UTC)
    plan = ((tenant.alice, 3), (tenant.bob, 2), (tenant.admin, 1))
    for rank, (user, count) in enumerate(plan):
        ids = []
        for index in range(count):
            started = now - timedelta(hours=1 + index * 30 + rank * 7)
            session_id = await create_session(
                owner,
                user,
                title=f"{label} {user.email} session {index}",
                agent_id=agents[AGENT_NAMES[index % 4]],
                created_at=started,
            )
            for turn in range(index + 1):
                await add_message(
                    owner,
                    tenant_id,
                    session_id,
                    f"{label} message {turn}",
                    created_at=started + timedelta(minutes=turn),
                )
            ids.append(session_id)
        tenant.sessions[user.user_id] = ids
    return tenant


async def make_world(owner: asyncpg.Pool, secret: str) -> World:
    """Two fresh tenants, A and B."""
    return World(a=await make_tenant(owner, secret, "A"), b=await make_tenant(owner, secret, "B"), secret=secret)


async def snapshot(owner: asyncpg.Pool, session_id: uuid.UUID) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A session's row and its messages as the owner sees them, to show a request changed nothing."""
    row = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    messages = await owner.fetch(
        "SELECT * FROM messages WHERE session_id = $1 ORDER BY created_at, message_id", session_id
    )
    return (dict(row) if row else None, [dict(m) for m in messages])
