"""``access_log`` as the runtime role: append-only through the read path, never changed, never another tenant's.

Every attempt runs on a raw connection as ``chat_app`` with each context (none, a supporter,
the admin, another tenant's admin), in a transaction rolled back afterwards. The rollback
test plants a failing trigger (as the owner) and sees the read fail with the recording.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from app.db.context import set_context
from tests.factories import World

CHANGES = (
    "UPDATE access_log SET reader_id = owner_id",
    "UPDATE access_log SET at = at - interval '1 year'",
    "DELETE FROM access_log",
    "TRUNCATE access_log",
)


@pytest.fixture
async def runtime(database) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the runtime role ``chat_app``."""
    connection = await asyncpg.connect(database.runtime_dsn)
    yield connection
    await connection.close()


async def recorded(client: Any, world: World) -> None:
    """An entry in each tenant: each admin reads a supporter's session."""
    for tenant in (world.a, world.b):
        session_id = tenant.sessions[tenant.alice.user_id][0]
        response = await client.get(tenant.path(f"sessions/{session_id}"), headers=tenant.admin.headers)
        assert response.status_code == 200


def contexts(world: World) -> list[tuple[str, uuid.UUID | None, uuid.UUID | None]]:
    a, b = world.a, world.b
    return [
        ("no context", None, None),
        ("tenant only", a.tenant_id, None),
        ("supporter (the owner)", a.tenant_id, a.alice.user_id),
        ("admin (the reader)", a.tenant_id, a.admin.user_id),
        ("other tenant's admin", b.tenant_id, b.admin.user_id),
    ]


async def test_no_context_can_update_delete_or_truncate_an_entry(client, world: World, owner, runtime) -> None:
    await recorded(client, world)
    before = await owner.fetch(
        "SELECT * FROM access_log WHERE tenant_id = ANY($1) ORDER BY entry_id", [world.a.tenant_id, world.b.tenant_id]
    )
    assert len(before) == 2
    for label, tenant_id, user_id in contexts(world):
        for statement in CHANGES:
            transaction = runtime.transaction()
            await transaction.start()
            try:
                await set_context(runtime, tenant_id, user_id)
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await runtime.execute(statement)
            finally:
                await transaction.rollback()
            assert label  # every context was tried
    after = await owner.fetch(
        "SELECT * FROM access_log WHERE tenant_id = ANY($1) ORDER BY entry_id", [world.a.tenant_id, world.b.tenant_id]
    )
    assert after == before


async def test_each_sees_only_what_the_policies_allow(client, world: World, runtime) -> None:
    await recorded(client, world)
    a = world.a
    seen = {}
    for label, tenant_id, user_id in contexts(world):
        async with runtime.transaction():
            await set_context(runtime, tenant_id, user_id)
            seen[label] = await runtime.fetch("SELECT tenant_id, owner_id, reader_id FROM access_log")
    assert seen["no context"] == []
    assert seen["tenant only"] == []
    assert [tuple(r) for r in seen["supporter (the owner)"]] == [(a.tenant_id, a.alice.user_id, a.admin.user_id)]
    assert [tuple(r) for r in seen["admin (the reader)"]] == [(a.tenant_id, a.alice.user_id, a.admin.user_id)]
    assert [r["tenant_id"] for r in seen["other tenant's admin"]] == [world.b.tenant_id]
    # Bob, a supporter of A, has no entry about him: he sees none of Alice's.
    async with runtime.transaction():
        await set_context(runtime, a.tenant_id, a.bob.user_id)
        assert await runtime.fetch("SELECT * FROM access_log") == []


async def test_forged_entries_are_refused(world: World, runtime) -> None:
    a, b = world.a, world.b
    alices = a.sessions[a.alice.user_id][0]
    admins = a.sessions[a.admin.user_id][0]
    insert = (
        "INSERT INTO access_log (tenant_id, session_id, owner_id, reader_id, action, at)"
        " VALUES ($1, $2, $3, $4, 'session', coalesce($5, now()))"
    )
    forgeries = [
        # (context user, session, owner, reader, at)
        ("someone else as the reader", a.admin, alices, a.alice.user_id, a.bob.user_id, None),
        ("a session the reader owns", a.admin, admins, a.admin.user_id, a.admin.user_id, None),
        ("a time other than now", a.admin, alices, a.alice.user_id, a.admin.user_id, "2000-01-01"),
        ("a session the reader cannot read", a.bob, alices, a.alice.user_id, a.bob.user_id, None),
        ("the wrong owner", a.admin, alices, a.bob.user_id, a.admin.user_id, None),
        ("a session that does not exist", a.admin, uuid.uuid4(), a.alice.user_id, a.admin.user_id, None),
    ]
    for label, user, session_id, owner_id, reader_id, at in forgeries:
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, user.user_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                await runtime.execute(
                    insert, a.tenant_id, session_id, owner_id, reader_id, None if at is None else _at(at)
                )
            assert label
    # Another tenant's row, with that tenant's admin as the reader, from A's context.
    async with runtime.transaction():
        await set_context(runtime, a.tenant_id, a.admin.user_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(
                insert, b.tenant_id, b.sessions[b.alice.user_id][0], b.alice.user_id, b.admin.user_id, None
            )
    # The one row the policy lets through is the one the read path writes.
    async with runtime.transaction():
        await set_context(runtime, a.tenant_id, a.admin.user_id)
        await runtime.execute(insert, a.tenant_id, alices, a.alice.user_id, a.admin.user_id, None)


def _at(text: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_if_recording_fails_the_read_fails_and_serves_nothing(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][1]
    await owner.execute(
        f"""CREATE FUNCTION public.test_refuse_access_log() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.tenant_id = '{a.tenant_id}' THEN RAISE EXCEPTION 'planted: recording fails'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_access_log BEFORE INSERT ON access_log
                FOR EACH ROW EXECUTE FUNCTION public.test_refuse_access_log();"""
    )
    try:
        for path in (f"sessions/{session_id}", f"sessions/{session_id}/messages", f"export?user_id={a.alice.user_id}"):
            response = await client.get(a.path(path), headers=a.admin.headers)
            assert response.status_code == 500, (path, response.text)
            assert "message" not in response.text
            assert "session 1" not in response.text
        # The owner's own read records nothing, so it is served.
        response = await client.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers)
        assert response.status_code == 200
    finally:
        await owner.execute(
            "DROP TRIGGER test_refuse_access_log ON access_log; DROP FUNCTION public.test_refuse_access_log()"
        )
    assert await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", a.tenant_id) == 0
    response = await client.get(a.path(f"sessions/{session_id}"), headers=a.admin.headers)
    assert response.status_code == 200
    assert await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", a.tenant_id) == 1
