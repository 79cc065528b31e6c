"""``python -m app db prune [--dry-run]``: exactly the expired rows of tenants with a retention, once.

The real command runs as the owner (``DATABASE_URL``), in subprocesses; two of them at once
in the concurrency test. Other tests' tenants have no retention, so they are never touched;
each test reads only its own tenants' lines.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.db.context import set_context
from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, add_message, create_session, create_tenant, create_user

LINE = re.compile(
    r"^\S+ \((?P<tenant>[0-9a-f-]{36})\), retention (?P<days>\d+) days: (?:deleted|would delete) "
    r"(?P<sessions>\d+) sessions, (?P<messages>\d+) messages, (?P<entries>\d+) access_log entries$"
)


async def prune(database: Any, *args: str) -> dict[uuid.UUID, tuple[int, int, int]]:
    """Run ``db prune``; per tenant (sessions, messages, entries) as it printed them."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "db",
        "prune",
        *args,
        env={**os.environ, "DATABASE_URL": database.owner_dsn},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0
    found = {}
    for line in out.decode().splitlines():
        if match := LINE.match(line):
            found[uuid.UUID(match["tenant"])] = (int(match["sessions"]), int(match["messages"]), int(match["entries"]))
    return found


async def state(owner: asyncpg.Pool, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Everything prune may touch in a tenant, and whether its counters still match."""
    return {
        "sessions": sorted(
            r[0] for r in await owner.fetch("SELECT session_id FROM sessions WHERE tenant_id = $1", tenant_id)
        ),
        "messages": await owner.fetchval("SELECT count(*) FROM messages WHERE tenant_id = $1", tenant_id),
        "entries": sorted(
            r[0] for r in await owner.fetch("SELECT entry_id FROM access_log WHERE tenant_id = $1", tenant_id)
        ),
        "counters_exact": await owner.fetchval(
            """SELECT bool_and(c.sessions = (SELECT count(*) FROM sessions s
                                             WHERE s.tenant_id = c.tenant_id AND s.user_id = c.user_id))
               FROM session_counts c WHERE c.tenant_id = $1""",
            tenant_id,
        ),
    }


async def age(owner: asyncpg.Pool, session_ids: list[uuid.UUID], days: int) -> None:
    """Make sessions last change ``days`` ago."""
    await owner.execute(
        "UPDATE sessions SET updated_at = now() - $2 * interval '1 day' WHERE session_id = ANY($1)", session_ids, days
    )


async def test_dry_run_changes_nothing_and_a_real_run_deletes_exactly_the_expired(
    client, world: World, owner, database
) -> None:
    a, b = world.a, world.b
    await owner.execute("UPDATE tenants SET retention_days = 30 WHERE tenant_id = $1", a.tenant_id)
    expired = [a.sessions[a.alice.user_id][0], a.sessions[a.alice.user_id][1], a.sessions[a.bob.user_id][0]]
    kept = sorted(a.all_session_ids - set(expired))
    read = a.sessions[a.alice.user_id][2]  # kept, and not the admin's own (whose reads record nothing)
    young = a.sessions[a.bob.user_id][1]
    # The admin reads an expired session and a kept one: two entries now; one more, old, about the kept one.
    for session_id in (expired[0], read):
        assert (await client.get(a.path(f"sessions/{session_id}"), headers=a.admin.headers)).status_code == 200
    old_entry = await owner.fetchval(
        """INSERT INTO access_log (tenant_id, session_id, owner_id, reader_id, action, at)
           SELECT tenant_id, session_id, user_id, $2, 'messages', now() - interval '40 days'
           FROM sessions WHERE session_id = $1 RETURNING entry_id""",
        read,
        a.admin.user_id,
    )
    await age(owner, expired, 31)
    await age(owner, [young], 29)  # within the retention
    await age(owner, list(b.all_session_ids), 400)  # B has no retention: kept forever
    messages = await owner.fetchval("SELECT sum(message_count) FROM sessions WHERE session_id = ANY($1)", expired)
    before_a, before_b = await state(owner, a.tenant_id), await state(owner, b.tenant_id)

    assert (await prune(database, "--dry-run"))[a.tenant_id] == (3, messages, 2)
    assert await state(owner, a.tenant_id) == before_a

    found = await prune(database)
    assert found[a.tenant_id] == (3, messages, 2)
    assert b.tenant_id not in found
    after_a = await state(owner, a.tenant_id)
    assert after_a["sessions"] == kept
    assert after_a["messages"] == before_a["messages"] - messages
    assert len(after_a["entries"]) == 1
    assert old_entry not in after_a["entries"]
    assert after_a["counters_exact"] is True
    assert await state(owner, b.tenant_id) == before_b
    # The API agrees: totals are exact.
    listed = (await client.get(a.path("sessions"), headers=a.admin.headers)).json()
    assert listed["total"] == len(kept)
    # Nothing is left to do.
    assert (await prune(database))[a.tenant_id] == (0, 0, 0)


async def test_two_concurrent_runs_delete_each_row_once(owner, database) -> None:
    tenant_id = await create_tenant(owner)
    users = [await create_user(owner, tenant_id, "supporter", TEST_JWT_SECRET) for _ in range(3)]
    admin = await create_user(owner, tenant_id, "admin", TEST_JWT_SECRET)
    old = datetime.now(UTC) - timedelta(days=10)
    sessions = []
    for user in users:
        for _ in range(400):
            sessions.append(await create_session(owner, user, created_at=old))
    for session_id in sessions[::50]:
        await add_message(owner, tenant_id, session_id, created_at=old)
    await owner.execute(
        """INSERT INTO access_log (tenant_id, session_id, owner_id, reader_id, action, at)
           SELECT tenant_id, session_id, user_id, $2, 'session', now() - interval '8 days'
           FROM sessions WHERE tenant_id = $1""",
        tenant_id,
        admin.user_id,
    )
    await age(owner, sessions, 9)
    await owner.execute("UPDATE tenants SET retention_days = 7 WHERE tenant_id = $1", tenant_id)

    first, second = await asyncio.gather(prune(database), prune(database))
    totals = tuple(x + y for x, y in zip(first[tenant_id], second[tenant_id], strict=True))
    assert totals == (len(sessions), len(sessions[::50]), len(sessions))
    after = await state(owner, tenant_id)
    assert after["sessions"] == []
    assert after["messages"] == 0
    assert after["entries"] == []
    assert after["counters_exact"] in (True, None)
    print(f"\ntwo runs at once: {first[tenant_id]} + {second[tenant_id]}")


async def test_a_plain_owner_bound_by_force_prunes_through_the_policies(database) -> None:
    """The production shape: the owner is neither superuser nor BYPASSRLS, so every row it deletes passes RLS."""
    from app.db.engine import get_engine
    from app.db.prune import prune as prune_now
    from app.db.upgrade import upgrade
    from app.settings import runtime_dsn_from
    from tests.conftest import TEST_RUNTIME_PASSWORD
    from tests.security.conftest import as_role, execute, with_database

    server = with_database(database.owner_dsn, "postgres")
    name, role = f"chat_prune_{uuid.uuid4().hex[:8]}", f"chat_prune_owner_{uuid.uuid4().hex[:8]}"
    await execute(
        server,
        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'pw-{role}'",
        f"GRANT chat_migrator TO {role}",
        f"CREATE DATABASE {name} OWNER {role}",
    )
    plain = as_role(with_database(server, name), role, f"pw-{role}")
    engine = get_engine()
    saved = dict(engine.config)
    try:
        await upgrade(plain, runtime_dsn_from(plain, TEST_RUNTIME_PASSWORD))
        engine.config = saved
        superuser = await asyncpg.create_pool(with_database(server, name), min_size=1, max_size=2)
        try:
            tenant_id = await create_tenant(superuser)
            await superuser.execute("UPDATE tenants SET retention_days = 1 WHERE tenant_id = $1", tenant_id)
            admin = await create_user(superuser, tenant_id, "admin", TEST_JWT_SECRET)
            alice = await create_user(superuser, tenant_id, "supporter", TEST_JWT_SECRET)
            # Written in Alice's context: the counters trigger runs as the plain owner, under the policies.
            async with superuser.acquire() as connection, connection.transaction():
                await set_context(connection, tenant_id, alice.user_id)
                gone = [
                    await connection.fetchval(
                        "INSERT INTO sessions (tenant_id, user_id) VALUES ($1, $2) RETURNING session_id",
                        tenant_id,
                        alice.user_id,
                    )
                    for _ in range(4)
                ]
                await connection.execute(
                    """INSERT INTO messages (tenant_id, session_id, user_id, role, content)
                       SELECT $1, s, $2, 'user', 'hello' FROM unnest($3::uuid[]) AS s""",
                    tenant_id,
                    alice.user_id,
                    gone,
                )
            kept = gone.pop()
            await age(superuser, gone, 2)
            await superuser.execute(
                """INSERT INTO access_log (tenant_id, session_id, owner_id, reader_id, action, at)
                   VALUES ($1, $2, $3, $4, 'session', now()), ($1, $5, $3, $4, 'session', now() - interval '2 days'),
                          ($1, $5, $3, $4, 'messages', now())""",
                tenant_id,
                gone[0],
                alice.user_id,
                admin.user_id,
                kept,
            )
            dry = await prune_now(plain, dry_run=True)
            assert [(t.tenant_id, t.sessions, t.messages, t.entries) for t in dry] == [(tenant_id, 3, 3, 2)]
            done = await prune_now(plain, dry_run=False, batch=2)
            assert [(t.tenant_id, t.sessions, t.messages, t.entries) for t in done] == [(tenant_id, 3, 3, 2)]
            assert await superuser.fetchval("SELECT array_agg(session_id) FROM sessions") == [kept]
            assert await superuser.fetchval("SELECT count(*) FROM messages") == 1
            assert await superuser.fetchval("SELECT count(*) FROM access_log") == 1
            assert (
                await superuser.fetchval("SELECT sessions FROM session_counts WHERE user_id = $1", alice.user_id) == 1
            )
            # The tenants' FORCE came back (it was lifted only inside a rolled-back transaction).
            assert await superuser.fetchval("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'tenants'")
        finally:
            await superuser.close()
    finally:
        engine.config = saved
        await execute(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"DROP ROLE {role}")
