"""Isolation of the list and /me, over HTTP and directly as the runtime role in the database."""

from __future__ import annotations

import itertools
import uuid

import asyncpg
import pytest

from app.db.context import set_context
from tests.factories import World, make_token

TENANT_TABLES = ("tenants", "users", "agent_configs", "sessions", "messages", "session_counts")


async def test_another_tenants_token_on_this_tenants_path_is_403(client, world: World) -> None:
    for user in (world.b.admin, world.b.alice):
        for route in ("sessions", "me"):
            response = await client.get(world.a.path(route), headers=user.headers)
            assert response.status_code == 403
            assert str(world.a.alice.user_id) not in response.text


async def test_admin_of_b_never_sees_a_rows_by_any_parameter(client, world: World) -> None:
    foreign = {str(s) for s in world.a.all_session_ids}
    candidates = [None, world.a.alice.user_id, world.a.admin.user_id, world.b.alice.user_id]
    for user_id, sort_by, order in itertools.product(candidates, ("updated_at", "created_at"), ("desc", "asc")):
        params = {"sort_by": sort_by, "order": order, "limit": 100}
        if user_id:
            params["user_id"] = str(user_id)
        response = await client.get(world.b.path(), headers=world.b.admin.headers, params=params)
        assert response.status_code == 200
        assert not foreign & {s["session_id"] for s in response.json()["sessions"]}
        assert world.a.name + " " not in response.text


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "bearer " + "x" * 500,
    ],
)
async def test_missing_or_malformed_authorization_is_401(client, world: World, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.get(world.a.path(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_bad_tokens_are_401_never_403(client, world: World) -> None:
    a, b = world.a, world.b
    bad = {
        "expired": make_token(world.secret, a.alice.user_id, a.tenant_id, ttl=-5),
        "wrong key": make_token("another-secret-that-is-long-enough-0123456789", a.alice.user_id, a.tenant_id),
        "unknown user": make_token(world.secret, uuid.uuid4(), a.tenant_id),
        "user of B claiming A": make_token(world.secret, b.alice.user_id, a.tenant_id),
        # Authentication first: a bad token on another tenant's path is 401, not 403.
        "expired, other tenant": make_token(world.secret, b.alice.user_id, b.tenant_id, ttl=-5),
        "sub not a uuid": make_token(world.secret, a.alice.user_id, a.tenant_id, sub="alice"),
        "tenant not a uuid": make_token(world.secret, a.alice.user_id, a.tenant_id, tenant_id=["x"]),
    }
    for reason, token in bad.items():
        response = await client.get(a.path(), headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, reason


async def test_a_deleted_user_is_401(client, world: World, owner: asyncpg.Pool) -> None:
    assert (await client.get(world.a.path(), headers=world.a.bob.headers)).status_code == 200
    await owner.execute("DELETE FROM users WHERE user_id = $1", world.a.bob.user_id)
    response = await client.get(world.a.path(), headers=world.a.bob.headers)
    assert response.status_code == 401


async def test_runtime_role_without_context_reads_zero_rows_from_every_tenant_table(world: World, database) -> None:
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        for table in TENANT_TABLES:
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        # After a transaction-local context ends, the settings read '' on this connection: still zero rows.
        async with connection.transaction():
            await set_context(connection, world.a.tenant_id, world.a.admin.user_id)
            assert await connection.fetchval("SELECT count(*) FROM sessions") == 6
        assert await connection.fetchval("SELECT current_setting('app.tenant_id', true)") == ""
        for table in TENANT_TABLES:
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await connection.close()


async def test_runtime_role_with_a_context_sees_only_that_tenant(world: World, database) -> None:
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        async with connection.transaction():
            await set_context(connection, world.b.tenant_id, world.b.alice.user_id)
            for table in TENANT_TABLES:
                tenants = await connection.fetch(f"SELECT DISTINCT tenant_id FROM {table}")
                assert [r["tenant_id"] for r in tenants] == [world.b.tenant_id], table
            sessions = {r["session_id"] for r in await connection.fetch("SELECT session_id FROM sessions")}
            assert sessions == set(world.b.sessions[world.b.alice.user_id])
    finally:
        await connection.close()


async def test_runtime_role_cannot_switch_row_security_off(database) -> None:
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        await connection.execute("SET row_security = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetchval("SELECT count(*) FROM sessions")
    finally:
        await connection.close()
