"""Isolation of one session's routes: reads and writes across tenants and users, over HTTP and in the database."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from app.db.context import set_context
from tests.factories import TestTenant, TestUser, World, snapshot

# Every route that names a session: (method, path under /api/{tenant_id}/, body).
SESSION_ROUTES = [
    ("GET", "sessions/{}", None),
    ("PATCH", "sessions/{}", {"title": "taken over"}),
    ("DELETE", "sessions/{}", None),
    ("GET", "sessions/{}/messages", None),
    ("POST", "sessions/{}/messages", {"role": "user", "content": "injected"}),
]
WRITES = [route for route in SESSION_ROUTES if route[0] != "GET"]


async def call(client: Any, tenant: TestTenant, user: TestUser, route: tuple[str, str, Any], session_id: Any) -> Any:
    method, rest, body = route
    return await client.request(method, tenant.path(rest.format(session_id)), headers=user.headers, json=body)


def attackers(world: World) -> list[tuple[str, TestTenant, TestUser, uuid.UUID]]:
    """(label, tenant whose path is used, caller, target session) for every cross attempt on A's sessions."""
    a, b = world.a, world.b
    alice_session = a.sessions[a.alice.user_id][0]
    admin_session = a.sessions[a.admin.user_id][0]
    return [
        ("supporter of B, B's path", b, b.alice, alice_session),
        ("admin of B, B's path", b, b.admin, alice_session),
        ("admin of B on A's admin session", b, b.admin, admin_session),
        ("other supporter of A", a, a.bob, alice_session),
        ("supporter of A on the admin's session", a, a.alice, admin_session),
    ]


@pytest.mark.parametrize("route", SESSION_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
async def test_another_tenants_or_users_session_is_404_like_a_missing_one_and_unchanged(
    client, world: World, owner, route
) -> None:
    for label, tenant, user, target in attackers(world):
        before = await snapshot(owner, target)
        response = await call(client, tenant, user, route, target)
        missing = await call(client, tenant, user, route, uuid.uuid4())
        assert response.status_code == 404, (label, response.text)
        # The same answer as an id that never existed: nothing to probe.
        assert response.json() == missing.json() == {"status_code": 404, "detail": "session not found"}, label
        assert await snapshot(owner, target) == before, label


@pytest.mark.parametrize("route", SESSION_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
async def test_a_token_of_b_on_as_path_is_403_and_changes_nothing(client, world: World, owner, route) -> None:
    target = world.a.sessions[world.a.alice.user_id][0]
    before = await snapshot(owner, target)
    for user in (world.b.admin, world.b.alice):
        response = await call(client, world.a, user, route, target)
        assert response.status_code == 403
        assert world.a.name + " " not in response.text
    assert await snapshot(owner, target) == before


async def test_a_token_of_b_cannot_create_a_session_in_a(client, world: World, owner) -> None:
    before = await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", world.a.tenant_id)
    response = await client.post(world.a.path(), headers=world.b.admin.headers, json={"title": "x"})
    assert response.status_code == 403
    assert await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", world.a.tenant_id) == before


@pytest.mark.parametrize("route", WRITES, ids=lambda r: f"{r[0]} {r[1]}")
async def test_admin_writing_a_session_of_the_tenant_they_do_not_own_is_403_and_changes_nothing(
    client, world: World, owner, route
) -> None:
    a = world.a
    target = a.sessions[a.bob.user_id][1]
    before = await snapshot(owner, target)
    response = await call(client, a, a.admin, route, target)
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == "only the session's owner may change it"
    assert await snapshot(owner, target) == before
    # The admin can still read it.
    assert (await call(client, a, a.admin, SESSION_ROUTES[0], target)).status_code == 200


async def test_admin_writes_their_own_session(client, world: World, owner) -> None:
    a = world.a
    target = a.sessions[a.admin.user_id][0]
    for route, status in zip(WRITES, (200, 204, 404), strict=True):
        # PATCH, then DELETE, then a message into the deleted session.
        response = await call(client, a, a.admin, route, target)
        assert response.status_code == status, (route, response.text)
    assert await snapshot(owner, target) == (None, [])


# -- the database itself, as the runtime role ---------------------------------------------------


async def test_runtime_role_in_a_context_cannot_insert_rows_of_b(world: World, database, owner) -> None:
    a, b = world.a, world.b
    b_session = b.sessions[b.alice.user_id][0]
    before = await snapshot(owner, b_session)
    b_sessions = await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", b.tenant_id)
    attempts = [
        (
            "session of B",
            "INSERT INTO sessions (tenant_id, user_id, title) VALUES ($1, $2, 'x')",
            (b.tenant_id, b.alice.user_id),
        ),
        (
            "session of A for B's user",
            "INSERT INTO sessions (tenant_id, user_id, title) VALUES ($1, $2, 'x')",
            (a.tenant_id, b.alice.user_id),
        ),
        (
            "message of B into B's session",
            "INSERT INTO messages (tenant_id, session_id, role, content) VALUES ($1, $2, 'user', 'x')",
            (b.tenant_id, b_session),
        ),
        (
            "message of A into B's session",
            "INSERT INTO messages (tenant_id, session_id, role, content) VALUES ($1, $2, 'user', 'x')",
            (a.tenant_id, b_session),
        ),
    ]
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        for _what, sql, args in attempts:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):  # noqa: PT012
                async with connection.transaction():
                    await set_context(connection, a.alice.tenant_id, a.alice.user_id)
                    await connection.execute(sql, *args)
    finally:
        await connection.close()
    assert await snapshot(owner, b_session) == before
    assert await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", b.tenant_id) == b_sessions


async def test_runtime_role_writes_only_the_context_users_own_sessions(world: World, database, owner) -> None:
    """Admins read the whole tenant but write only their own; a supporter not even another's session."""
    a = world.a
    alice_session = a.sessions[a.alice.user_id][0]
    before = await snapshot(owner, alice_session)
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        for user in (a.admin, a.bob):
            async with connection.transaction():
                await set_context(connection, user.tenant_id, user.user_id)
                visible = await connection.fetchval(
                    "SELECT count(*) FROM sessions WHERE session_id = $1", alice_session
                )
                assert visible == (1 if user is a.admin else 0)
                # UPDATE and DELETE silently match no row: the policy's USING hides it from writes.
                assert (
                    await connection.execute("UPDATE sessions SET title = 'taken' WHERE session_id = $1", alice_session)
                    == "UPDATE 0"
                )
                assert (
                    await connection.execute("DELETE FROM sessions WHERE session_id = $1", alice_session) == "DELETE 0"
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):  # noqa: PT012
                async with connection.transaction():
                    await set_context(connection, user.tenant_id, user.user_id)
                    await connection.execute(
                        "INSERT INTO messages (tenant_id, session_id, role, content) VALUES ($1, $2, 'user', 'x')",
                        a.tenant_id,
                        alice_session,
                    )
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):  # noqa: PT012
                async with connection.transaction():
                    await set_context(connection, user.tenant_id, user.user_id)
                    await connection.execute(
                        "INSERT INTO sessions (tenant_id, user_id) VALUES ($1, $2)", a.tenant_id, a.alice.user_id
                    )
        # The owner moving her own session to another user is refused by WITH CHECK.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):  # noqa: PT012
            async with connection.transaction():
                await set_context(connection, a.alice.tenant_id, a.alice.user_id)
                await connection.execute(
                    "UPDATE sessions SET user_id = $1 WHERE session_id = $2", a.bob.user_id, alice_session
                )
        # Messages are append-only for the runtime role.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):  # noqa: PT012
            async with connection.transaction():
                await set_context(connection, a.alice.tenant_id, a.alice.user_id)
                await connection.execute("DELETE FROM messages WHERE session_id = $1", alice_session)
    finally:
        await connection.close()
    assert await snapshot(owner, alice_session) == before
