"""The per-user session counters behind the list's ``total`` stay exact through every kind of write."""

from __future__ import annotations

import asyncpg
import pytest

from app.db.context import set_context
from tests.factories import TestUser, World, create_session


async def counted(owner: asyncpg.Pool, user: TestUser) -> tuple[int, int]:
    """(counter, actual number of sessions) of ``user``."""
    counter = await owner.fetchval(
        "SELECT coalesce(sum(sessions), 0) FROM session_counts WHERE tenant_id = $1 AND user_id = $2",
        user.tenant_id,
        user.user_id,
    )
    actual = await owner.fetchval(
        "SELECT count(*) FROM sessions WHERE tenant_id = $1 AND user_id = $2", user.tenant_id, user.user_id
    )
    return int(counter), int(actual)


async def test_counters_follow_inserts_deletes_and_moves(owner, world: World) -> None:
    alice, bob = world.a.alice, world.a.bob
    assert await counted(owner, alice) == (3, 3)
    extra = [await create_session(owner, alice) for _ in range(4)]
    assert await counted(owner, alice) == (7, 7)
    await owner.execute("DELETE FROM sessions WHERE session_id = ANY($1::uuid[])", extra[:2])
    assert await counted(owner, alice) == (5, 5)
    await owner.execute("UPDATE sessions SET user_id = $1 WHERE session_id = $2", bob.user_id, extra[2])
    assert await counted(owner, alice) == (4, 4)
    assert await counted(owner, bob) == (3, 3)


async def test_runtime_role_writes_sessions_and_the_counter_follows_but_cannot_touch_it(
    owner, world: World, database
) -> None:
    alice = world.b.alice
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        async with connection.transaction():
            await set_context(connection, alice.tenant_id, alice.user_id)
            created = await connection.fetchval(
                "INSERT INTO sessions (tenant_id, user_id) VALUES ($1, $2) RETURNING session_id",
                alice.tenant_id,
                alice.user_id,
            )
            assert await connection.fetchval("SELECT sessions FROM session_counts") == 4
            await connection.execute("DELETE FROM sessions WHERE session_id = $1", created)
            assert await connection.fetchval("SELECT sessions FROM session_counts") == 3
        async with connection.transaction():
            await set_context(connection, alice.tenant_id, alice.user_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("UPDATE session_counts SET sessions = 1000")
    finally:
        await connection.close()
    assert await counted(owner, alice) == (3, 3)


async def test_list_total_is_the_counter_sum_and_deleting_a_user_drops_its_counter(client, owner, world: World) -> None:
    for _ in range(5):
        await create_session(owner, world.a.bob)
    response = await client.get(world.a.path(), headers=world.a.admin.headers)
    assert response.status_code == 200, response.text
    actual = await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", world.a.tenant_id)
    assert response.json()["total"] == actual == 11
    await owner.execute("DELETE FROM users WHERE user_id = $1", world.a.bob.user_id)
    assert await owner.fetchval("SELECT count(*) FROM session_counts WHERE user_id = $1", world.a.bob.user_id) == 0
    response = await client.get(world.a.path(), headers=world.a.admin.headers)
    assert response.json()["total"] == 4
