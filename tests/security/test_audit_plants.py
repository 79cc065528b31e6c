"""Each break ``rls audit`` reports is real: the plants of ``tests/security/plants.py``, exploited.

Every test plants one break on a throwaway copy (the same SQL whose exact findings
``test_audit.py`` checks), then shows what it opens, as the runtime role on a raw connection
with a legitimate context (``app.db.context.set_context``), and what the same request did
before the plant. Where the project's hardening still stops the exploitation, the test shows
what the plant does achieve, and its docstring says so.

The copies' migrator is a superuser (as the audit's migrator warning says): definer functions,
rules and triggers it owns bypass RLS. With a plain owner, FORCE would confine them to the
context's tenant; the tests that depend on this say so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from app.audit import run_audit
from app.db.context import set_context
from app.db.engine import get_engine
from app.db.selfcheck import UnsafeRoleError, check_runtime_role
from app.db.upgrade import upgrade
from tests.conftest import TEST_JWT_SECRET
from tests.conftest import TestDatabase as Database
from tests.factories import TestTenant, TestUser, World, create_session, make_world
from tests.live import PROJECT, free_port
from tests.security.conftest import THROWAWAY_PASSWORD, Throwaway, as_role, execute, with_database
from tests.security.plants import drop_peeker, expected, fill, peeker, statements


@dataclass
class Copy:
    """A throwaway copy with tenants A and B, and what the tests do with it."""

    throwaway: Throwaway
    owner: asyncpg.Pool
    world: World

    async def plant(self, name: str) -> None:
        """Plant break ``name`` of ``PLANTS``, as the owner."""
        await execute(self.throwaway.dsn, *statements(name, self.throwaway))

    async def runtime(self) -> asyncpg.Connection:
        """A raw connection as the copy's runtime role (close it)."""
        return await asyncpg.connect(self.throwaway.runtime_dsn)

    async def found(self) -> set[tuple[str, str]]:
        """The audit's findings, without the migrator warning."""
        report = await run_audit(self.throwaway.dsn, self.throwaway.role)
        return {(f.name, f.object) for f in report.findings} - {("migrator", report.migrator)}

    @property
    def peeker(self) -> str:
        """The role a plant may create."""
        return peeker(self.throwaway)


@pytest.fixture
async def copy(throwaway: Throwaway) -> AsyncIterator[Copy]:
    """The throwaway copy with two tenants; the plant's role is dropped afterwards."""
    pool = await asyncpg.create_pool(throwaway.dsn, min_size=1, max_size=2)
    try:
        yield Copy(throwaway, pool, await make_world(pool, TEST_JWT_SECRET))
    finally:
        await pool.close()
        await execute(throwaway.dsn, drop_peeker(throwaway))


async def tenants_read(connection: asyncpg.Connection, sql: str, *context: uuid.UUID | None) -> set[uuid.UUID]:
    """The tenants whose rows ``sql`` (selecting ``tenant_id``) returns, in a transaction with ``context``."""
    async with connection.transaction():
        if context:
            await set_context(connection, *context)
        return {row[0] for row in await connection.fetch(sql)}


async def titles_read(connection: asyncpg.Connection, user: TestUser) -> set[str]:
    """The session titles ``user`` reads (legitimate context)."""
    async with connection.transaction():
        await set_context(connection, user.tenant_id, user.user_id)
        return {row["title"] for row in await connection.fetch("SELECT title FROM sessions")}


def own_titles(tenant: TestTenant, *users: TestUser) -> set[str]:
    """The titles of the sessions ``users`` own (as ``make_tenant`` names them)."""
    counts = {tenant.alice.user_id: 3, tenant.bob.user_id: 2, tenant.admin.user_id: 1}
    return {f"{tenant.name} {u.email} session {i}" for u in users for i in range(counts[u.user_id])}


async def messages_of(owner: asyncpg.Pool, tenant: TestTenant) -> list[str]:
    """The contents of a tenant's messages, as the owner reads them."""
    rows = await owner.fetch("SELECT content FROM messages WHERE tenant_id = $1 ORDER BY created_at", tenant.tenant_id)
    return [row["content"] for row in rows]


# --- tables -------------------------------------------------------------------------------------


async def test_rls_disabled_lets_the_runtime_role_read_every_tenant_without_context(copy: Copy) -> None:
    world, runtime = copy.world, await copy.runtime()
    try:
        assert await tenants_read(runtime, "SELECT tenant_id FROM sessions") == set()
        await copy.plant("rls_enabled")
        assert await tenants_read(runtime, "SELECT tenant_id FROM sessions") == {world.a.tenant_id, world.b.tenant_id}
    finally:
        await runtime.close()


async def test_a_reachable_table_with_another_tenant_column_is_read_whole(copy: Copy) -> None:
    await copy.plant("rls_enabled (another tenant column)")
    await copy.owner.execute(
        "INSERT INTO notes VALUES (1, $1, 'A: the merger'), (2, $2, 'B: the layoffs')",
        copy.world.a.tenant_id,
        copy.world.b.tenant_id,
    )
    runtime = await copy.runtime()
    try:
        a = copy.world.a
        assert await tenants_read(runtime, "SELECT org FROM notes", a.tenant_id, a.alice.user_id) == {
            a.tenant_id,
            copy.world.b.tenant_id,
        }
    finally:
        await runtime.close()


async def test_without_force_the_tables_owner_reads_every_tenant(copy: Copy) -> None:
    """The runtime role owns no table (``ownership``, and the self-check), so NO FORCE opens nothing to it.

    What it opens: the table's owner, as soon as it is a plain role (as a production migrator
    should be), reads every tenant, and so does everything that runs as the owner (SECURITY
    DEFINER functions, rules). Here the owner of messages is such a plain role.
    """
    await execute(
        copy.throwaway.dsn, f'CREATE ROLE "{copy.peeker}" NOLOGIN', f'ALTER TABLE messages OWNER TO "{copy.peeker}"'
    )
    connection = await copy.owner.acquire()
    try:
        await connection.execute(f'SET ROLE "{copy.peeker}"')
        assert await tenants_read(connection, "SELECT tenant_id FROM messages") == set()
        await copy.plant("rls_forced")
        assert await tenants_read(connection, "SELECT tenant_id FROM messages") == {
            copy.world.a.tenant_id,
            copy.world.b.tenant_id,
        }
        await connection.execute("RESET ROLE")
    finally:
        await copy.owner.release(connection)


async def test_without_the_floor_one_slip_in_a_policy_opens_every_tenant(copy: Copy) -> None:
    """Dropping the floor alone opens nothing: the permissive policies compare the tenant too (that is what
    the plant achieves). But then they are the only guard: with the floor, a permissive policy that
    forgets its tenant still leaks nothing; without it, every tenant. The slip: the messages policy's
    admin rule written without ``tenant_id = …``."""
    a, b = copy.world.a, copy.world.b
    query = "SELECT tenant_id FROM messages"
    runtime = await copy.runtime()
    try:
        await copy.plant("tenant_floor")
        assert await tenants_read(runtime, query, a.tenant_id, a.admin.user_id) == {a.tenant_id}
        slip = (
            "ALTER POLICY messages_select ON public.messages"
            " USING (user_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))"
        )
        await execute(copy.throwaway.dsn, slip)
        assert await tenants_read(runtime, query, a.tenant_id, a.admin.user_id) == {a.tenant_id, b.tenant_id}
        await execute(
            copy.throwaway.dsn,
            "CREATE POLICY messages_tenant_floor ON public.messages AS RESTRICTIVE"
            " FOR ALL TO chat_runtime USING (tenant_id = (SELECT rls.tenant_id()))",
        )
        assert await tenants_read(runtime, query, a.tenant_id, a.admin.user_id) == {a.tenant_id}
    finally:
        await runtime.close()


# --- policies -----------------------------------------------------------------------------------


async def test_a_policy_to_public_applies_to_roles_the_floor_does_not_bind(copy: Copy) -> None:
    """Policies name chat_runtime and chat_migrator; another role with a grant reads nothing, as no policy applies.

    The project's hardening keeps roles outside the two groups from even calling the context
    functions (schema rls is theirs alone). A reporting role given those grants and SELECT
    on messages shows what TO PUBLIC achieves: the permissive policy then applies to it, and
    the tenant floor (which names the two groups) does not.
    """
    reporter = copy.peeker
    await execute(
        copy.throwaway.dsn,
        f'CREATE ROLE "{reporter}" NOLOGIN',
        f'GRANT SELECT ON messages TO "{reporter}"',
        f'GRANT USAGE ON SCHEMA rls TO "{reporter}"',
        "GRANT EXECUTE ON FUNCTION rls.set_context(uuid, uuid), rls.tenant_id(), rls.user_id(), rls.role()"
        f' TO "{reporter}"',
        f'GRANT SELECT ON users TO "{reporter}"',  # rls.set_context reads the user
    )
    a = copy.world.a
    connection = await copy.owner.acquire()
    try:
        await connection.execute(f'SET ROLE "{reporter}"')
        query = "SELECT tenant_id FROM messages"
        assert await tenants_read(connection, query, a.tenant_id, a.admin.user_id) == set()
        await copy.plant("policy_to_public")
        assert await tenants_read(connection, query, a.tenant_id, a.admin.user_id) == {a.tenant_id}
        await connection.execute("RESET ROLE")
    finally:
        await copy.owner.release(connection)


async def test_without_a_delete_policy_deleting_ones_own_session_does_nothing(copy: Copy) -> None:
    """A missing permissive policy denies: the API's DELETE of one's own session answers 404."""
    alice = copy.world.a.alice
    first, second = copy.world.a.sessions[alice.user_id][:2]
    runtime = await copy.runtime()
    try:
        delete = "DELETE FROM sessions WHERE session_id = $1 RETURNING session_id"
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            assert await runtime.fetchval(delete, first) == first
        await copy.plant("policy_coverage")
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            assert await runtime.fetchval(delete, second) is None
        assert await copy.owner.fetchval("SELECT count(*) FROM sessions WHERE session_id = $1", second) == 1
    finally:
        await runtime.close()


async def test_an_always_true_policy_shows_a_supporter_her_colleagues_sessions(copy: Copy) -> None:
    """The floor still hides tenant B (hardening); within tenant A the supporter rule is gone."""
    a = copy.world.a
    runtime = await copy.runtime()
    try:
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice)
        await copy.plant("policy_always_true")
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice, a.bob, a.admin)
    finally:
        await runtime.close()


async def test_an_added_policy_shows_a_supporter_her_colleagues_sessions(copy: Copy) -> None:
    """Never another tenant (the floor), but a permissive policy added by hand widens the tenant's own rules."""
    a = copy.world.a
    runtime = await copy.runtime()
    try:
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice)
        await copy.plant("unexpected_policy")
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice, a.bob, a.admin)
    finally:
        await runtime.close()


# --- roles, privileges, ownership -------------------------------------------------------------


async def test_a_reachable_bypassrls_role_reads_every_tenant_after_set_role(copy: Copy) -> None:
    runtime = await copy.runtime()
    try:
        with pytest.raises(asyncpg.PostgresError):  # no such role, or not a member
            await runtime.execute(f'SET ROLE "{copy.peeker}"')
        await check_runtime_role(runtime)  # the self-check lets it serve
        await copy.plant("runtime_role")
        await runtime.execute(f'SET ROLE "{copy.peeker}"')
        read = await tenants_read(runtime, "SELECT tenant_id FROM sessions")  # no context at all
        assert read == {copy.world.a.tenant_id, copy.world.b.tenant_id}
        await runtime.execute("RESET ROLE")
        with pytest.raises(UnsafeRoleError, match=f"can become '{copy.peeker}' .*, which has BYPASSRLS"):
            await check_runtime_role(runtime)
    finally:
        await runtime.close()


def test_the_server_refuses_to_start_when_its_role_can_become_a_bypassrls_role(throwaway: Throwaway) -> None:
    """A real ``python -m app serve`` process, as the copy's runtime role, after the plant."""
    throwaway.break_it(*statements("runtime_role", throwaway))
    env = {
        **os.environ,
        "DATABASE_URL": throwaway.dsn,
        "APP_DATABASE_URL": throwaway.runtime_dsn,
        "APP_ENV": "development",
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(free_port())],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        throwaway.break_it(drop_peeker(throwaway))
    output = result.stdout + result.stderr
    role, bypass = throwaway.role, peeker(throwaway)
    assert result.returncode != 0, output
    assert (
        f"refusing to start: database role '{role}' can become '{bypass}' ({role} → {bypass}, by SET ROLE),"
        " which has BYPASSRLS; row-level security would be bypassed." in output
    )
    assert "Application startup failed" in output


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ('ALTER ROLE "{role}" SUPERUSER', "'{role}' is a superuser;"),
        ('ALTER ROLE "{role}" BYPASSRLS', "'{role}' has BYPASSRLS;"),
        ('ALTER TABLE public.users OWNER TO "{role}"', "'{role}' owns tenant tables users;"),
        (
            'CREATE ROLE "{peeker}" NOLOGIN SUPERUSER; GRANT "{peeker}" TO "{role}";'
            ' ALTER TABLE public.agent_configs OWNER TO "{peeker}"',
            "'{role}' can become '{peeker}' ({role} → {peeker}, by SET ROLE), which is a superuser and owns"
            " tenant tables agent_configs;",
        ),
    ],
)
def test_the_self_check_refuses_what_the_audit_reports(throwaway: Throwaway, sql: str, refusal: str) -> None:
    """The start-up check of ``app/db/selfcheck.py`` on the runtime role's own connection."""

    async def check() -> None:
        connection = await asyncpg.connect(throwaway.runtime_dsn)
        try:
            await check_runtime_role(connection)
        finally:
            await connection.close()

    asyncio.run(check())  # a clean copy serves
    throwaway.break_it(fill(sql, throwaway))
    try:
        with pytest.raises(UnsafeRoleError) as refused:
            asyncio.run(check())
    finally:
        throwaway.break_it(drop_peeker(throwaway))
    assert str(refused.value).startswith(f"refusing to start: database role {fill(refusal, throwaway)}")
    assert str(refused.value).endswith("row-level security would be bypassed. Use a plain role (see APP_DATABASE_URL).")


async def test_temp_lets_a_temporary_table_shadow_sessions_for_unqualified_names(copy: Copy) -> None:
    """The API's SQL names tables unqualified: on a connection that has run the attacker's SQL, a temporary
    ``sessions`` answers instead of the real one. The project's functions are pinned and qualified: the
    message trigger still counts on the real session (hardening)."""
    alice = copy.world.a.alice
    session = copy.world.a.sessions[alice.user_id][0]
    runtime = await copy.runtime()
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("CREATE TEMP TABLE sessions (session_id uuid, tenant_id uuid, title text)")
        await copy.plant("runtime_privileges")
        await runtime.execute("CREATE TEMP TABLE sessions (session_id uuid, tenant_id uuid, title text)")
        await runtime.execute("INSERT INTO sessions VALUES ($1, $2, 'forged')", session, alice.tenant_id)
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            assert await runtime.fetch("SELECT title FROM sessions WHERE tenant_id = $1", alice.tenant_id) == [
                ("forged",)
            ]
            before = await runtime.fetchval("SELECT message_count FROM public.sessions WHERE session_id = $1", session)
            await runtime.execute(
                "INSERT INTO messages (tenant_id, session_id, user_id, role, content)"
                " VALUES ($1, $2, $3, 'user', 'hi')",
                alice.tenant_id,
                session,
                alice.user_id,
            )
            after = await runtime.fetchval("SELECT message_count FROM public.sessions WHERE session_id = $1", session)
            assert after == before + 1
    finally:
        await runtime.close()


async def test_create_on_public_lets_the_runtime_role_change_what_sql_means(copy: Copy) -> None:
    """With CREATE on public the runtime role creates ``public.lower(varchar)``: an exact match, so every
    ``lower(<varchar>)`` resolved through public — unpinned SQL such as the API's own — calls it."""
    hijack = (
        "CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'hijacked'::text $$"
    )
    alice = copy.world.a.alice
    runtime = await copy.runtime()
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(hijack)
        await copy.plant("runtime_privileges (CREATE)")
        await runtime.execute(hijack)
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            assert (
                await runtime.fetchval("SELECT lower(email) FROM users WHERE user_id = $1", alice.user_id) == "hijacked"
            )
    finally:
        await runtime.close()


async def test_the_owner_of_rls_tenant_id_makes_one_tenants_request_read_another_tenant(copy: Copy) -> None:
    """No CREATE is needed to change a function one owns. Declared IMMUTABLE, ``rls.tenant_id()`` is folded
    into the plan, and a prepared statement's plan is reused by the connection's next transactions:
    the next request on that pooled connection, of another tenant, reads the first tenant's rows.
    (``ALTER FUNCTION … SET app.tenant_id`` would be simpler; PostgreSQL refuses it to non-superusers.)"""
    a, b = copy.world.a, copy.world.b
    attacker = await copy.runtime()
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
            await attacker.execute("ALTER FUNCTION rls.tenant_id() IMMUTABLE")
        await copy.plant("ownership")
        await attacker.execute("ALTER FUNCTION rls.tenant_id() IMMUTABLE")
    finally:
        await attacker.close()
    pooled = await copy.runtime()  # a connection of the API's pool: every request prepares its statements
    try:
        query = "SELECT tenant_id FROM sessions"
        assert await tenants_read(pooled, query, a.tenant_id, a.admin.user_id) == {a.tenant_id}
        assert await tenants_read(pooled, query, b.tenant_id, b.admin.user_id) == {a.tenant_id}
    finally:
        await pooled.close()
    assert await copy.found() == expected("ownership", copy.throwaway)  # the volatility is drift of the same object


async def test_a_superuser_migrator_ignores_force(copy: Copy) -> None:
    """The warning is real: without any context the migrator reads every tenant, FORCE or not; the runtime
    role (bound by FORCE and the policies) reads nothing."""
    assert {r[0] for r in await copy.owner.fetch("SELECT tenant_id FROM sessions")} == {
        copy.world.a.tenant_id,
        copy.world.b.tenant_id,
    }
    runtime = await copy.runtime()
    try:
        assert await tenants_read(runtime, "SELECT tenant_id FROM sessions") == set()
    finally:
        await runtime.close()


# --- views and functions ------------------------------------------------------------------------


async def test_a_view_without_security_invoker_reads_every_tenant(copy: Copy) -> None:
    runtime = await copy.runtime()
    try:
        await copy.plant("view_security_invoker")
        assert await tenants_read(runtime, "SELECT tenant_id FROM session_titles") == {
            copy.world.a.tenant_id,
            copy.world.b.tenant_id,
        }
    finally:
        await runtime.close()


async def test_an_unpinned_trigger_function_resolves_names_through_the_callers_search_path(copy: Copy) -> None:
    """Pinned, the message trigger ignores an operator planted in public; unpinned, ``NEW.role = 'user'``
    resolves to it, and an assistant's message titles the session (any planted object in public now
    decides what the trigger does, inside every request that writes a message)."""
    alice = copy.world.a.alice
    await execute(copy.throwaway.dsn, *statements("catalog_shadowing", copy.throwaway))
    untitled = [await create_session(copy.owner, alice) for _ in range(2)]
    runtime = await copy.runtime()

    async def assistant_says(session: uuid.UUID, content: str) -> str | None:
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            await runtime.execute(
                "INSERT INTO messages (tenant_id, session_id, user_id, role, content)"
                " VALUES ($1, $2, $3, 'assistant', $4)",
                alice.tenant_id,
                session,
                alice.user_id,
                content,
            )
            title: str | None = await runtime.fetchval("SELECT title FROM sessions WHERE session_id = $1", session)
            return title

    try:
        assert await assistant_says(untitled[0], "How can I help?") is None
        await copy.plant("function_search_path")
        assert await assistant_says(untitled[1], "How can I help?") == "How can I help?"
    finally:
        await runtime.close()


async def test_a_definer_function_returns_every_tenants_titles(copy: Copy) -> None:
    """It runs as its owner (the superuser migrator here; a plain owner would be confined by FORCE to the
    caller's tenant — the migrator warning)."""
    a, b = copy.world.a, copy.world.b
    runtime = await copy.runtime()
    try:
        await copy.plant("definer_executable")
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            titles = {row[0] for row in await runtime.fetch("SELECT * FROM public.all_titles()")}
        everyone = (a.alice, a.bob, a.admin)
        assert titles == own_titles(a, *everyone) | own_titles(b, b.alice, b.bob, b.admin)
    finally:
        await runtime.close()


async def test_a_shadowing_operator_changes_sql_resolved_through_public(copy: Copy) -> None:
    """The project's functions are pinned (hardening): with the operator, a supporter is still a supporter
    and reads only her own sessions. SQL resolved through public — here a function without a fixed
    search_path, as ``rls.is_admin()`` was — now finds the supporter an admin."""
    await execute(
        copy.throwaway.dsn,
        "CREATE FUNCTION public.old_is_admin() RETURNS boolean LANGUAGE sql STABLE"
        " AS $$ SELECT role = 'admin' FROM public.users WHERE user_id = (SELECT rls.user_id()) $$",
    )
    a = copy.world.a
    runtime = await copy.runtime()

    async def as_alice(sql: str) -> object:
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            return await runtime.fetchval(sql)

    try:
        assert await as_alice("SELECT public.old_is_admin()") is False
        await copy.plant("catalog_shadowing")
        assert await as_alice("SELECT public.old_is_admin()") is True
        assert await as_alice("SELECT 'supporter'::varchar = 'admin'") is True
        assert await as_alice("SELECT rls.role()") == "supporter"
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice)
    finally:
        await runtime.close()


# --- triggers, rules, grants, drift ---------------------------------------------------------------


async def alice_writes(copy: Copy, content: str) -> None:
    """Tenant A's supporter adds a message to her own session, as the API would."""
    alice = copy.world.a.alice
    runtime = await copy.runtime()
    try:
        async with runtime.transaction():
            await set_context(runtime, alice.tenant_id, alice.user_id)
            await runtime.execute(
                "INSERT INTO messages (tenant_id, session_id, user_id, role, content) VALUES ($1, $2, $3, 'user', $4)",
                alice.tenant_id,
                copy.world.a.sessions[alice.user_id][0],
                alice.user_id,
                content,
            )
    finally:
        await runtime.close()


async def test_a_trigger_copies_one_tenants_messages_into_another_tenants_session(copy: Copy) -> None:
    """The trigger function runs as its owner (the superuser migrator here; a plain owner would be confined
    by FORCE to the writing request's tenant — the migrator warning)."""
    b = copy.world.b
    await alice_writes(copy, "A: before the trigger")
    assert "A: before the trigger" not in await messages_of(copy.owner, b)
    await copy.plant("unexpected_trigger")
    await alice_writes(copy, "A: our quarterly numbers")
    runtime = await copy.runtime()
    try:
        async with runtime.transaction():
            await set_context(runtime, b.tenant_id, b.admin.user_id)
            read = {row[0] for row in await runtime.fetch("SELECT content FROM messages")}
        assert "A: our quarterly numbers" in read
    finally:
        await runtime.close()


async def test_a_rule_copies_messages_out_of_rls_and_across_tenants(copy: Copy) -> None:
    """The audit's plant copies every message into a side table without RLS (whoever reads it reads every
    tenant); a rule can as well write into another tenant's rows: its actions run as the table owner
    (the superuser migrator here; a plain owner would be confined by FORCE — the migrator warning)."""
    await copy.plant("unexpected_rule")
    await alice_writes(copy, "A: the side table")
    copies = await copy.owner.fetch("SELECT tenant_id_copy, content FROM message_copies")
    assert [tuple(row) for row in copies] == [(copy.world.a.tenant_id, "A: the side table")]
    await execute(
        copy.throwaway.dsn,
        "CREATE RULE leak AS ON INSERT TO public.messages DO ALSO"
        " INSERT INTO public.sessions (tenant_id, user_id, title)"
        " SELECT s.tenant_id, s.user_id, NEW.content FROM public.sessions AS s"
        " WHERE s.tenant_id <> NEW.tenant_id ORDER BY s.created_at LIMIT 1",
    )
    assert await copy.found() == expected("unexpected_rule", copy.throwaway) | {
        ("unexpected_rule", "public.messages.leak")
    }
    await alice_writes(copy, "A: across tenants")
    b = copy.world.b
    runtime = await copy.runtime()
    try:
        assert "A: across tenants" in await titles_read(runtime, b.admin)
    finally:
        await runtime.close()


async def test_truncate_to_public_lets_one_tenants_context_wipe_another_tenants_messages(copy: Copy) -> None:
    a, b = copy.world.a, copy.world.b
    assert await messages_of(copy.owner, b)
    runtime = await copy.runtime()
    try:
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute("TRUNCATE messages, search_words")
        await copy.plant("unexpected_grant")
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            await runtime.execute("TRUNCATE messages, search_words")
    finally:
        await runtime.close()
    assert await messages_of(copy.owner, b) == []


async def test_a_function_changed_by_hand_makes_every_supporter_an_admin(copy: Copy) -> None:
    a = copy.world.a
    runtime = await copy.runtime()
    try:
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice)
        await copy.plant("drift")
        assert await titles_read(runtime, a.alice) == own_titles(a, a.alice, a.bob, a.admin)
    finally:
        await runtime.close()


# --- a plain migrator, as in production ---------------------------------------------------------


@pytest.fixture
def plain(database: Database) -> Iterator[tuple[Throwaway, str]]:
    """A database upgraded by a plain migrator (NOSUPERUSER NOBYPASSRLS, owner of the database, member of
    chat_migrator), as a DBA would set it up: the Throwaway's DSN is the migrator's; beside it, the
    suite's superuser DSN of the same database (to write test data without a context)."""
    tag = uuid.uuid4().hex[:8]
    server = with_database(database.owner_dsn, "postgres")
    name, migrator, runtime = f"chat_audit_plain_{tag}", f"chat_audit_mig_{tag}", f"chat_audit_role_{tag}"
    password = THROWAWAY_PASSWORD
    asyncio.run(
        execute(
            server,
            f"CREATE ROLE {migrator} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'",
            f"GRANT chat_migrator TO {migrator}",
            f"CREATE DATABASE {name} OWNER {migrator}",
            f"CREATE ROLE {runtime} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'",
            f"GRANT chat_runtime TO {runtime}",
        )
    )
    owner_dsn = as_role(with_database(server, name), migrator, password)
    engine = get_engine()
    saved = dict(engine.config)
    try:
        asyncio.run(upgrade(owner_dsn, as_role(owner_dsn, runtime, password)))
        yield Throwaway(owner_dsn, runtime), with_database(database.owner_dsn, name)
    finally:
        engine.config = saved
        asyncio.run(
            execute(
                server,
                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                f"DROP ROLE IF EXISTS {runtime}",
                f"DROP ROLE IF EXISTS {migrator}",
            )
        )


def test_with_a_plain_migrator_the_audit_is_clean_without_warnings(plain: tuple[Throwaway, str]) -> None:
    migrator = plain[0]
    report = asyncio.run(run_audit(migrator.dsn, migrator.role))
    assert report.findings == []
    assert report.runtime_roles == [migrator.role, "chat_runtime"]
    assert len(report.tenant_tables) == 8


async def test_with_a_plain_owner_force_confines_a_definer_function_to_the_callers_tenant(
    plain: tuple[Throwaway, str],
) -> None:
    """What the superuser migrator's warning is about: the same planted definer function, owned by a plain
    migrator, reads under FORCE and the policies, with the caller's context. It is still reported (it
    widens a supporter's reach within the tenant to every title) and the replay still runs."""
    migrator, superuser = plain
    # Test data without a context: the superuser, with the triggers off (the counters' definer trigger now
    # runs as the plain owner, whom FORCE binds: without a context it may write no counter).
    writer = await asyncpg.create_pool(
        superuser, min_size=1, max_size=2, server_settings={"session_replication_role": "replica"}
    )
    try:
        world = await make_world(writer, TEST_JWT_SECRET)
    finally:
        await writer.close()
    await execute(migrator.dsn, *statements("definer_executable", migrator))
    assert {(f.name, f.object) for f in (await run_audit(migrator.dsn, migrator.role)).findings} == expected(
        "definer_executable", migrator
    )
    a = world.a
    runtime = await asyncpg.connect(migrator.runtime_dsn)
    try:
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            titles = {row[0] for row in await runtime.fetch("SELECT * FROM public.all_titles()")}
    finally:
        await runtime.close()
    assert titles == own_titles(a, a.alice)  # the owner runs as alice's context: her sessions only


# --- access_log: append-only ------------------------------------------------------------------------


async def admin_reads(runtime: asyncpg.Connection, tenant: TestTenant) -> None:
    """The tenant's admin reads Alice's first session, as the read path does (recording it)."""
    session_id = tenant.sessions[tenant.alice.user_id][0]
    async with runtime.transaction():
        await set_context(runtime, tenant.tenant_id, tenant.admin.user_id)
        assert await runtime.fetchval(
            "SELECT count(*) FROM sessions WHERE tenant_id = $1 AND session_id = $2"
            " AND chat_record_read(tenant_id, session_id, user_id, 'session')",
            tenant.tenant_id,
            session_id,
        )


async def entries_of(owner: asyncpg.Pool, *tenants: TestTenant) -> int:
    return int(
        await owner.fetchval(
            "SELECT count(*) FROM access_log WHERE tenant_id = ANY($1)", [t.tenant_id for t in tenants]
        )
    )


async def test_truncate_on_access_log_lets_one_context_wipe_every_tenants_record(copy: Copy) -> None:
    a, b = copy.world.a, copy.world.b
    runtime = await copy.runtime()
    try:
        for tenant in (a, b):
            await admin_reads(runtime, tenant)
        await copy.plant("append_only (a grant)")
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            await runtime.execute("TRUNCATE access_log")
    finally:
        await runtime.close()
    assert await entries_of(copy.owner, a, b) == 0


async def test_a_trigger_elsewhere_lets_the_owner_erase_who_read_her_session(copy: Copy) -> None:
    a = copy.world.a
    runtime = await copy.runtime()
    try:
        await admin_reads(runtime, a)
        await copy.plant("append_only (a trigger elsewhere)")
        async with runtime.transaction():
            await set_context(runtime, a.tenant_id, a.alice.user_id)
            await runtime.execute("UPDATE sessions SET title = 'renamed' WHERE user_id = $1", a.alice.user_id)
    finally:
        await runtime.close()
    assert await entries_of(copy.owner, a) == 0


async def test_a_trigger_on_access_log_serves_reads_unrecorded(copy: Copy) -> None:
    a = copy.world.a
    await copy.plant("append_only (a trigger on it)")
    runtime = await copy.runtime()
    try:
        await admin_reads(runtime, a)
    finally:
        await runtime.close()
    assert await entries_of(copy.owner, a) == 0
