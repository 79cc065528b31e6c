"""The database as the runtime role, with raw SQL: what RLS, FORCE and the grants guarantee on their own.

A forged context (``set_config`` by someone who can run SQL as the runtime role) is honoured:
that is the documented assumption of SECURITY.md (the API sends parameterised SQL only), and
``test_a_forged_context_is_trusted_by_design`` pins it so that nobody relies on the opposite.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.db.context import set_context
from tests.factories import World

TENANT_TABLES = (
    "tenants",
    "users",
    "agent_configs",
    "sessions",
    "messages",
    "session_counts",
    "search_words",
    "access_log",
)
# What an attacker who can run SQL as the runtime role would send (SECURITY.md): the API never does.
FORGED_CONTEXT = (
    "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true), "
    "set_config('app.role', $3, true)"
)


async def admins_read_alice(owner: asyncpg.Pool, victims: World) -> None:
    """An access_log entry in each tenant: its admin read one of alice's sessions (there is data to leak)."""
    for tenant in (victims.a, victims.b):
        await owner.execute(
            "INSERT INTO access_log (tenant_id, session_id, owner_id, reader_id, action)"
            " VALUES ($1, $2, $3, $4, 'session')",
            tenant.tenant_id,
            tenant.sessions[tenant.alice.user_id][0],
            tenant.alice.user_id,
            tenant.admin.user_id,
        )


@pytest.fixture
async def runtime(database) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the runtime role ``chat_app``."""
    connection = await asyncpg.connect(database.runtime_dsn)
    yield connection
    await connection.close()


async def readable_relations(owner: asyncpg.Pool) -> list[str]:
    """Every table, view and materialized view outside the system schemas that ``chat_app`` may SELECT."""
    rows = await owner.fetch(
        """SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%' AND has_table_privilege('chat_app', c.oid, 'SELECT')
           ORDER BY 1"""
    )
    return [r["name"] for r in rows]


async def test_no_context_reads_zero_rows_from_every_readable_relation(
    runtime: asyncpg.Connection, owner: asyncpg.Pool, victims: World
) -> None:
    await admins_read_alice(owner, victims)
    relations = await readable_relations(owner)
    assert relations == [f"public.{t}" for t in sorted(TENANT_TABLES)]  # a new view or table must be reviewed
    for relation in relations:
        assert await owner.fetchval(f"SELECT count(*) FROM {relation}") > 0, relation  # there is data to leak
        assert await runtime.fetchval(f"SELECT count(*) FROM {relation}") == 0, relation


async def test_row_security_off_is_an_error_not_a_bypass(runtime: asyncpg.Connection, victims: World) -> None:
    await runtime.execute("SET row_security = off")
    for table in TENANT_TABLES:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await runtime.fetchval(f"SELECT count(*) FROM {table}")


@pytest.mark.parametrize("reset", ["RESET ALL", "RESET app.tenant_id", "SET app.tenant_id TO DEFAULT"])
async def test_reset_mid_transaction_leaves_no_context(runtime: asyncpg.Connection, victims: World, reset: str) -> None:
    async with runtime.transaction():
        await set_context(runtime, victims.a.tenant_id, victims.a.admin.user_id)
        assert await runtime.fetchval("SELECT count(*) FROM sessions") == 6
        await runtime.execute(reset)
        for table in TENANT_TABLES:
            assert await runtime.fetchval(f"SELECT count(*) FROM {table}") == 0, (reset, table)


async def test_discard_all_is_refused_inside_a_transaction(runtime: asyncpg.Connection, victims: World) -> None:
    async with runtime.transaction():
        await set_context(runtime, victims.a.tenant_id, victims.a.admin.user_id)
        with pytest.raises(asyncpg.ActiveSQLTransactionError):
            await runtime.execute("DISCARD ALL")
    await runtime.execute("DISCARD ALL")  # outside: allowed, and the context is gone either way
    for table in TENANT_TABLES:
        assert await runtime.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_context_ends_with_the_transaction(runtime: asyncpg.Connection, victims: World) -> None:
    async with runtime.transaction():
        await set_context(runtime, victims.b.tenant_id, victims.b.alice.user_id)
        assert await runtime.fetchval("SELECT count(*) FROM sessions") == 3
    for table in TENANT_TABLES:
        assert await runtime.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_a_context_sees_only_its_tenant_and_writes_nowhere_else(
    runtime: asyncpg.Connection, owner: asyncpg.Pool, victims: World
) -> None:
    a, b = victims.a, victims.b
    await admins_read_alice(owner, victims)
    async with runtime.transaction():
        await set_context(runtime, a.tenant_id, a.alice.user_id)
        for table in TENANT_TABLES:
            tenants = {r[0] for r in await runtime.fetch(f"SELECT DISTINCT tenant_id FROM {table}")}
            assert tenants == {a.tenant_id}, table
        foreign = list(b.all_session_ids)
        assert await runtime.execute("UPDATE sessions SET title = 'owned' WHERE session_id = ANY($1)", foreign) == (
            "UPDATE 0"
        )
        assert await runtime.execute("DELETE FROM sessions WHERE session_id = ANY($1)", foreign) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await runtime.execute(
                "INSERT INTO sessions (tenant_id, user_id) VALUES ($1, $2)", b.tenant_id, b.alice.user_id
            )
    assert await owner.fetchval("SELECT count(*) FROM sessions WHERE title = 'owned'") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM users",
        "UPDATE users SET role = 'admin'",
        "INSERT INTO tenants (tenant_id, name) VALUES (gen_random_uuid(), 'evil')",
        "DELETE FROM messages",
        "TRUNCATE sessions",
        "ALTER TABLE sessions DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY sessions_select ON sessions",
        "CREATE POLICY mine ON sessions FOR SELECT USING (true)",
        "CREATE TABLE public.loot (x int)",
        "CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        "CREATE OR REPLACE FUNCTION rls.tenant_id() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "ALTER ROLE chat_app BYPASSRLS",
        "CREATE ROLE evil LOGIN",
    ],
)
async def test_runtime_role_may_not(runtime: asyncpg.Connection, victims: World, statement: str) -> None:
    async with runtime.transaction():
        await set_context(runtime, victims.a.tenant_id, victims.a.admin.user_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(statement)


async def test_context_functions_return_only_what_was_set(runtime: asyncpg.Connection, victims: World) -> None:
    assert await runtime.fetchval("SELECT (rls.tenant_id(), rls.user_id(), rls.role())::text") == "(,,)"
    async with runtime.transaction():
        # B's admin id with A's tenant: no user of A, so no role (the role comes from A's users table).
        assert await set_context(runtime, victims.a.tenant_id, victims.b.admin.user_id) is None
        assert await runtime.fetchval("SELECT rls.role()") is None
        assert await runtime.fetchval("SELECT count(*) FROM sessions") == 0
        assert await set_context(runtime, victims.a.tenant_id, uuid.uuid4()) is None
        assert await runtime.fetchval("SELECT rls.role()") is None
        alice = await set_context(runtime, victims.a.tenant_id, victims.a.alice.user_id)
        assert alice is not None
        assert alice["email"] == victims.a.alice.email
        assert await runtime.fetchval("SELECT rls.role()") == "supporter"
        admin = await set_context(runtime, victims.a.tenant_id, victims.a.admin.user_id)
        assert admin is not None
        assert admin["role"] == "admin"
        assert await runtime.fetchval("SELECT (rls.tenant_id(), rls.user_id(), rls.role())::text") == (
            f"({victims.a.tenant_id},{victims.a.admin.user_id},admin)"
        )
        # A context of a user alone: the role of the previous context does not linger.
        assert await set_context(runtime, victims.a.tenant_id) is None
        assert await runtime.fetchval("SELECT (rls.user_id(), rls.role())::text") == "(,)"


async def test_set_context_refuses_to_run_outside_a_transaction(runtime: asyncpg.Connection, victims: World) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        await set_context(runtime, victims.a.tenant_id, victims.a.alice.user_id)


async def test_a_malformed_forged_context_fails_closed(runtime: asyncpg.Connection, victims: World) -> None:
    async with runtime.transaction():
        await runtime.execute(FORGED_CONTEXT, "' OR true --", str(victims.a.alice.user_id), "")
        with pytest.raises(asyncpg.InvalidTextRepresentationError):
            await runtime.fetchval("SELECT count(*) FROM sessions")


async def test_a_forged_context_is_trusted_by_design(runtime: asyncpg.Connection, victims: World) -> None:
    """Assumed, not guaranteed: SQL injection could call set_config itself (see SECURITY.md).

    A forged role is honoured as well: with any user id of the tenant (the users table is
    readable tenant-wide), 'admin' reads the colleagues' sessions. That is why only
    parameterised SQL exists in the API.
    """
    async with runtime.transaction():
        await runtime.execute(FORGED_CONTEXT, str(victims.b.tenant_id), str(victims.b.alice.user_id), "admin")
        assert await runtime.fetchval("SELECT rls.role()") == "admin"
        assert await runtime.fetchval("SELECT count(*) FROM sessions") == 6
