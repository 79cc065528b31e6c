"""``python -m app rls audit`` against real violations.

Each test breaks a throwaway copy of an upgraded database on purpose (``CREATE DATABASE …
TEMPLATE``), runs the audit, and checks that it reports exactly that violation: the whole set
of findings is compared, so a plant that trips another check is noticed. The throwaway
databases use their own runtime role, so breaking a role never touches the ``chat_app`` role
the rest of the suite runs as. The plants of ``tests/security/plants.py`` (one or more per
check) are proven real in ``test_audit_plants.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import pytest

from app.audit import CHECKS, AuditConnectionError, Finding, Report, render_json, render_table, run_audit
from app.cli import main
from tests.conftest import TestDatabase as Database
from tests.security.conftest import Throwaway, execute
from tests.security.plants import PLANTS, drop_peeker, expected, peeker, statements

TENANT_TABLES = [
    "public.access_log",
    "public.agent_configs",
    "public.messages",
    "public.search_words",
    "public.session_counts",
    "public.sessions",
    "public.tenants",
    "public.users",
]


def found(report: Report) -> set[tuple[str, str]]:
    """The (check, object) pairs of the report, without the migrator warning every copy carries."""
    return {(f.name, f.object) for f in report.findings} - {("migrator", report.migrator)}


def details(report: Report, check: str) -> dict[str, str]:
    """The details of one check's findings, by object."""
    return {f.object: f.detail for f in report.findings if f.name == check}


@pytest.fixture
def planted(throwaway: Throwaway) -> Iterator[Throwaway]:
    """The throwaway copy; the role a plant may create is dropped afterwards."""
    yield throwaway
    asyncio.run(execute(throwaway.dsn, drop_peeker(throwaway)))


# --- a clean database ---------------------------------------------------------------------------


def test_clean_copy_has_only_the_migrator_warning(throwaway: Throwaway) -> None:
    report = throwaway.audit()
    assert report.clean
    assert found(report) == set()
    assert [(f.name, f.level) for f in report.findings] == [("migrator", "WARN")]  # the suite's owner: a superuser
    assert "is a superuser" in report.findings[0].detail
    assert report.tenant_tables == TENANT_TABLES
    assert report.policies == 31  # access_log: floor, select, insert, readable session, prune; search_words: 5
    assert report.runtime_roles == [throwaway.role, "chat_runtime"]
    table = render_table(report)
    assert table.endswith("clean: no errors (1 warning)")
    assert "migrator               WARN 1" in table
    assert "drift                  ok" in table


def test_cli_on_the_suite_database_exits_0_with_the_warning(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    monkeypatch.setenv("APP_DATABASE_URL", database.runtime_dsn)
    assert main(["rls", "audit"]) == 0
    out = capsys.readouterr().out
    assert "clean: no errors (1 warning)" in out
    assert main(["rls", "audit", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["clean"] is True
    assert [(f["name"], f["level"]) for f in body["findings"]] == [("migrator", "WARN")]
    assert {c["name"] for c in body["checks"] if not c["ok"]} == {"migrator"}
    assert body["runtime_roles"] == ["chat_app", "chat_runtime"]
    assert body["runtime_role"] == "chat_app"


def test_cli_exits_2_when_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    assert main(["rls", "audit"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    with pytest.raises(AuditConnectionError):
        asyncio.run(run_audit("postgresql://postgres@127.0.0.1:1/nowhere", "chat_app", connect_timeout=2))


# --- one plant per check: exactly its findings ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_audit_reports_exactly_the_plant(planted: Throwaway, name: str) -> None:
    planted.break_it(*statements(name, planted))
    report = planted.audit()
    assert found(report) == expected(name, planted)
    assert not report.clean
    assert all(f.level == "ERROR" for f in report.findings if f.name != "migrator")


def test_every_check_has_a_plant() -> None:
    planted_checks = {check for plant in PLANTS.values() for check, _ in plant.findings}
    assert planted_checks | {"migrator"} == set(CHECKS)  # migrator: the warning of every copy (above)
    assert {name.split(" ")[0] for name in PLANTS} | {"migrator"} == set(CHECKS)


def test_the_findings_say_what_is_wrong(planted: Throwaway) -> None:
    for name in (
        "runtime_role",
        "unexpected_grant",
        "ownership",
        "catalog_shadowing",
        "rls_enabled (another tenant column)",
    ):
        planted.break_it(*statements(name, planted))
    report = planted.audit()
    role, bypass = planted.role, peeker(planted)
    assert details(report, "runtime_role") == {
        bypass: f"{role} can become it ({role} → {bypass}, SET ROLE) and it has BYPASSRLS:"
        " row-level security does not apply to it"
    }
    assert details(report, "unexpected_grant") == {
        "TRUNCATE on public.messages to PUBLIC": "TRUNCATE ignores row-level security; rls_policies/ grants no"
        " such privilege",
        "TRUNCATE on public.search_words to PUBLIC": "TRUNCATE ignores row-level security; rls_policies/ grants no"
        " such privilege",
        "SELECT on public.notes to chat_runtime": "not granted by rls_policies/",
    }
    assert details(report, "ownership") == {
        "function rls.tenant_id()": f"owned by {role}, which the runtime role is or can become: it can ALTER the"
        " function (SET a setting, SECURITY DEFINER) or drop it"
    }
    assert details(report, "drift") == {
        "function rls.tenant_id()": f"changed by hand: owner: live '{role}', files '{report.migrator}'"
    }
    assert details(report, "rls_enabled") == {
        "public.notes": "row-level security is disabled"
        f" (the runtime role reaches it through {role}, {bypass}, chat_runtime)"
    }
    assert details(report, "catalog_shadowing")["public.=(character varying,character varying)"].startswith(
        "operator named like pg_catalog's =, in schema public on the search_path of the migrator's sessions"
    )


# --- tables -------------------------------------------------------------------------------------


def test_new_tenant_table_without_rls(throwaway: Throwaway) -> None:
    throwaway.break_it("CREATE TABLE notes (note_id int PRIMARY KEY, tenant_id uuid NOT NULL, body text)")
    report = throwaway.audit()
    assert found(report) == {
        ("rls_enabled", "public.notes"),
        ("rls_forced", "public.notes"),
        ("tenant_floor", "public.notes"),
        ("policy_coverage", "public.notes"),
    }
    assert details(report, "rls_enabled") == {"public.notes": "row-level security is disabled"}
    assert details(report, "policy_coverage") == {
        "public.notes": "no permissive policy for SELECT, INSERT, UPDATE, DELETE"
    }


def test_a_reachable_table_with_its_floor_on_another_column_passes(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE TABLE notes (note_id int PRIMARY KEY, org uuid NOT NULL, body text)",
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE notes FORCE ROW LEVEL SECURITY",
        "CREATE POLICY notes_floor ON notes AS RESTRICTIVE FOR ALL TO chat_runtime"
        " USING (org = (SELECT rls.tenant_id())) WITH CHECK (org = (SELECT rls.tenant_id()))",
        "GRANT SELECT ON notes TO chat_runtime",
        "CREATE TABLE lookup (code text)",  # not reachable, no tenant column: not a tenant table
    )
    report = throwaway.audit()
    # The floor is accepted on the column `org`; what is left is that the files create neither it nor the grant.
    assert found(report) == {
        ("unexpected_policy", "public.notes.notes_floor"),
        ("unexpected_grant", "SELECT on public.notes to chat_runtime"),
    }
    assert "public.notes" in report.tenant_tables
    assert "public.lookup" not in report.tenant_tables


def test_a_floor_that_does_not_bind_the_runtime_role(throwaway: Throwaway) -> None:
    throwaway.break_it("ALTER POLICY sessions_tenant_floor ON sessions TO chat_migrator")
    report = throwaway.audit()
    assert found(report) == {
        ("tenant_floor", "public.sessions"),
        ("drift", "policy public.sessions.sessions_tenant_floor"),
    }
    assert details(report, "tenant_floor") == {
        "public.sessions": f"the floor applies to chat_migrator, not to {throwaway.role}, chat_runtime, which reach"
        " the table"
    }
    assert details(report, "drift")["policy public.sessions.sessions_tenant_floor"] == (
        "changed by hand: roles: live ['chat_migrator'], files ['chat_migrator', 'chat_runtime']"
    )


def test_non_tenant_tables_are_exempt_even_when_reached(throwaway: Throwaway) -> None:
    throwaway.break_it("GRANT SELECT ON public.migration TO chat_runtime")
    assert found(throwaway.audit()) == set()


# --- policies -----------------------------------------------------------------------------------


def test_policy_edited_by_hand(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "ALTER POLICY sessions_select ON sessions USING (tenant_id = (SELECT rls.tenant_id()))",
        "CREATE OR REPLACE FUNCTION rls.user_id() RETURNS uuid LANGUAGE sql STABLE"
        " AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("drift", "policy public.sessions.sessions_select"),
        ("drift", "function rls.user_id()"),
        ("function_search_path", "rls.user_id()"),
    }
    drift = details(report, "drift")
    assert drift["policy public.sessions.sessions_select"].startswith("changed by hand: qual: live")
    assert drift["function rls.user_id()"] == (
        "changed by hand: config: live '', files 'search_path=pg_catalog, pg_temp'; body differs"
    )


def test_policies_added_by_hand(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE POLICY audit_peek ON messages AS RESTRICTIVE FOR SELECT TO chat_runtime USING (true)",
        "CREATE TABLE lookup (code text)",
        "CREATE POLICY lookup_read ON lookup FOR SELECT USING (true)",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("unexpected_policy", "public.lookup.lookup_read"),
        ("unexpected_policy", "public.messages.audit_peek"),
        ("policy_to_public", "public.lookup.lookup_read"),
    }
    assert details(report, "unexpected_policy")["public.messages.audit_peek"] == (
        "not created by rls_policies/: RESTRICTIVE SELECT TO chat_runtime USING (true)"
    )


def test_always_true_policy(throwaway: Throwaway) -> None:
    throwaway.break_it("CREATE POLICY agents_everyone ON agent_configs FOR SELECT USING (true)")
    report = throwaway.audit()
    assert found(report) == {
        ("policy_always_true", "public.agent_configs.agents_everyone"),
        ("policy_to_public", "public.agent_configs.agents_everyone"),
        ("unexpected_policy", "public.agent_configs.agents_everyone"),
    }
    assert details(report, "policy_always_true") == {
        "public.agent_configs.agents_everyone": "USING passes a foreign row with another tenant: true"
    }


def test_policy_open_without_context_or_erroring(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "ALTER POLICY users_access ON users"
        " USING (tenant_id = (SELECT rls.tenant_id()) OR (SELECT rls.tenant_id()) IS NULL)",
        "ALTER POLICY tenants_access ON tenants WITH CHECK (tenant_id = current_setting('app.tenant_id')::uuid)",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("policy_always_true", "public.users.users_access"),
        ("policy_always_true", "public.tenants.tenants_access"),
        ("drift", "policy public.users.users_access"),
        ("drift", "policy public.tenants.tenants_access"),
    }
    always = details(report, "policy_always_true")
    assert always["public.users.users_access"].startswith("USING passes a foreign row with no context")
    assert always["public.tenants.tenants_access"].startswith("cannot evaluate with_check")


def test_policies_missing_their_clause(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "DROP POLICY sessions_select ON sessions",
        "CREATE POLICY sessions_select ON sessions FOR SELECT TO chat_runtime",
        "DROP POLICY sessions_insert ON sessions",
        "CREATE POLICY sessions_insert ON sessions FOR INSERT TO chat_runtime",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("policy_always_true", "public.sessions.sessions_insert"),
        ("policy_always_true", "public.sessions.sessions_select"),
        ("policy_coverage", "public.sessions"),
        ("drift", "policy public.sessions.sessions_insert"),
        ("drift", "policy public.sessions.sessions_select"),
    }
    assert details(report, "policy_always_true") == {
        "public.sessions.sessions_insert": "permissive INSERT policy without WITH CHECK",
        "public.sessions.sessions_select": "permissive SELECT policy without USING",
    }
    assert details(report, "policy_coverage") == {"public.sessions": "no permissive policy for SELECT, INSERT"}


# --- the replay -----------------------------------------------------------------------------------


def test_drift_sees_triggers_rules_and_grants_changed_or_missing(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "ALTER TABLE sessions DISABLE TRIGGER sessions_counters",
        "DROP TRIGGER messages_counters ON messages",
        "REVOKE INSERT ON messages FROM chat_runtime",
        "REVOKE EXECUTE ON FUNCTION rls.role() FROM chat_runtime",
        "ALTER FUNCTION public.chat_session_counters() SECURITY INVOKER",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("drift", "trigger public.sessions.sessions_counters"),
        ("drift", "trigger public.messages.messages_counters"),
        ("drift", "grant INSERT on public.messages to chat_runtime"),
        ("drift", "grant EXECUTE on function rls.role() to chat_runtime"),
        ("drift", "function public.chat_session_counters()"),
    }
    drift = details(report, "drift")
    assert drift["trigger public.sessions.sessions_counters"] == "changed by hand: enabled: live 'D', files 'O'"
    assert drift["trigger public.messages.messages_counters"] == (
        "created by rls_policies/ but missing from the database (dropped by hand)"
    )
    assert drift["function public.chat_session_counters()"] == (
        "changed by hand: security: live 'INVOKER', files 'DEFINER'"
    )


def test_grants_on_the_projects_functions_and_schema_beyond_the_files(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "GRANT EXECUTE ON FUNCTION rls.set_context(uuid, uuid) TO PUBLIC",
        "GRANT CREATE ON SCHEMA rls TO chat_migrator",
        "CREATE FUNCTION public.helper() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",  # not the project's
    )
    report = throwaway.audit()
    assert found(report) == {
        ("unexpected_grant", "EXECUTE on function rls.set_context(uuid,uuid) to PUBLIC"),
        ("unexpected_grant", "CREATE on schema rls to chat_migrator"),
    }


def test_drift_check_gives_up_instead_of_waiting_for_locks(throwaway: Throwaway) -> None:
    async def audit_while_a_reader_holds_a_lock() -> Report:
        reader = await asyncpg.connect(throwaway.dsn)
        try:
            async with reader.transaction():
                await reader.execute("LOCK TABLE users IN ACCESS SHARE MODE")
                return await run_audit(throwaway.dsn, throwaway.role, lock_timeout="100ms")
        finally:
            await reader.close()

    report = asyncio.run(audit_while_a_reader_holds_a_lock())
    assert found(report) == {("drift", "rls_policies/")}
    assert "lock timeout" in details(report, "drift")["rls_policies/"]
    assert not report.clean
    assert found(throwaway.audit()) == set()  # the rolled-back comparison changed nothing


def test_on_a_read_only_server_drift_is_a_warning_and_the_rules_still_hold(throwaway: Throwaway) -> None:
    database = throwaway.dsn.split("?")[0].rsplit("/", 1)[1]
    throwaway.break_it(
        "GRANT TRUNCATE ON messages TO PUBLIC",
        "CREATE POLICY colleagues ON sessions FOR SELECT TO chat_runtime USING (tenant_id = (SELECT rls.tenant_id()))",
        f'ALTER DATABASE "{database}" SET default_transaction_read_only = on',
    )
    report = throwaway.audit()
    # The grant breaks a rule (found without the replay); the added policy needs the replay.
    assert found(report) == {("drift", "rls_policies/"), ("unexpected_grant", "TRUNCATE on public.messages to PUBLIC")}
    drift = [f for f in report.findings if f.name == "drift"]
    assert drift[0].level == "WARN"
    assert drift[0].detail.startswith("not compared: the server is read-only (a hot standby?)")
    throwaway.break_it("SET default_transaction_read_only = off", "GRANT SELECT ON messages TO PUBLIC")
    assert found(throwaway.audit()) == {
        ("drift", "rls_policies/"),
        ("unexpected_grant", "TRUNCATE on public.messages to PUBLIC"),
        ("unexpected_grant", "SELECT on public.messages to PUBLIC"),
    }


# --- roles --------------------------------------------------------------------------------------


def test_runtime_role_with_bypassrls(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER ROLE "{throwaway.role}" BYPASSRLS')
    report = throwaway.audit()
    assert found(report) == {("runtime_role", throwaway.role)}
    assert details(report, "runtime_role")[throwaway.role] == (
        "the runtime role has BYPASSRLS: row-level security does not apply to it"
    )


def test_runtime_role_superuser(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER ROLE "{throwaway.role}" SUPERUSER')
    report = throwaway.audit()
    # A superuser holds every privilege: reported once, not again as TEMP, CREATE, grants or ownership.
    assert found(report) == {("runtime_role", throwaway.role)}
    assert details(report, "runtime_role")[throwaway.role].startswith("the runtime role is a superuser")


def test_runtime_role_with_createrole_and_a_bypassing_member_of_the_group(planted: Throwaway) -> None:
    bypass = peeker(planted)
    planted.break_it(
        f'ALTER ROLE "{planted.role}" CREATEROLE',
        f'CREATE ROLE "{bypass}" LOGIN BYPASSRLS',
        f'GRANT chat_runtime TO "{bypass}"',
    )
    report = planted.audit()
    assert found(report) == {("runtime_role", planted.role), ("runtime_role", bypass)}
    assert details(report, "runtime_role") == {
        planted.role: "the runtime role has CREATEROLE: it can grant itself membership in other roles",
        bypass: f"a member of chat_runtime or {planted.role} (it holds the runtime grants) that has BYPASSRLS:"
        " row-level security does not apply to it",
    }


def test_runtime_role_owns_a_tenant_table(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER TABLE agent_configs OWNER TO "{throwaway.role}"')
    report = throwaway.audit()
    assert found(report) == {("ownership", "table public.agent_configs")}
    assert details(report, "ownership")["table public.agent_configs"].endswith(
        "it can disable its row-level security or drop its policies"
    )


def test_runtime_role_that_does_not_exist(throwaway: Throwaway) -> None:
    report = asyncio.run(run_audit(throwaway.dsn, "no_such_role_here"))
    assert found(report) == {("runtime_role", "no_such_role_here")}
    assert "does not exist" in details(report, "runtime_role")["no_such_role_here"]
    throwaway.break_it("ALTER ROLE chat_runtime BYPASSRLS")  # cluster-wide: restored at once
    try:
        report = asyncio.run(run_audit(throwaway.dsn, "no_such_role_here"))
    finally:
        throwaway.break_it("ALTER ROLE chat_runtime NOBYPASSRLS")
    assert details(report, "runtime_role")["chat_runtime"] == (
        "the runtime group has BYPASSRLS: row-level security does not apply to it"
    )


# --- views and functions ------------------------------------------------------------------------


def test_views_without_security_invoker(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE VIEW session_titles AS SELECT tenant_id, title FROM sessions",
        "CREATE VIEW titles_again AS SELECT title FROM session_titles",
        "CREATE VIEW safe_titles WITH (security_invoker = true) AS SELECT title FROM sessions",
        "CREATE MATERIALIZED VIEW message_totals AS SELECT tenant_id, count(*) FROM messages GROUP BY 1",
        "CREATE VIEW unrelated AS SELECT 1 AS one",
        "CREATE VIEW reachable AS SELECT 1 AS one",
        "GRANT SELECT ON reachable TO chat_runtime",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("view_security_invoker", "public.message_totals"),
        ("view_security_invoker", "public.session_titles"),
        ("view_security_invoker", "public.titles_again"),
        ("view_security_invoker", "public.reachable"),
    }
    views = details(report, "view_security_invoker")
    assert views["public.message_totals"] == "materialized view over a tenant table stores rows outside RLS"
    assert views["public.reachable"] == (
        f"view readable by {throwaway.role}, chat_runtime runs as its owner (no security_invoker)"
    )


def test_definer_functions_without_search_path_and_executable(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE FUNCTION count_all_sessions() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT count(*) FROM public.sessions $$",
        "REVOKE ALL ON FUNCTION count_all_sessions() FROM PUBLIC",
        "CREATE FUNCTION pinned_badly() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog"
        " AS $$ SELECT 1 $$",
        "REVOKE ALL ON FUNCTION pinned_badly() FROM PUBLIC",
        "CREATE FUNCTION open_definer() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog, pg_temp AS $$ SELECT 1 $$",
        "GRANT EXECUTE ON FUNCTION pinned_badly() TO chat_runtime",
        "CREATE FUNCTION tuned() RETURNS int LANGUAGE sql SECURITY DEFINER SET work_mem = '1MB' AS $$ SELECT 1 $$",
        "REVOKE ALL ON FUNCTION tuned() FROM PUBLIC",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("function_search_path", "public.count_all_sessions()"),
        ("function_search_path", "public.pinned_badly()"),
        ("function_search_path", "public.tuned()"),
        ("definer_executable", "public.open_definer()"),
        ("definer_executable", "public.pinned_badly()"),
    }
    assert details(report, "function_search_path") == {
        "public.count_all_sessions()": "SECURITY DEFINER, without search_path = pg_catalog, pg_temp (has: none)",
        "public.pinned_badly()": "SECURITY DEFINER, without search_path = pg_catalog, pg_temp (has: pg_catalog)",
        "public.tuned()": "SECURITY DEFINER, without search_path = pg_catalog, pg_temp (has: none)",
    }
    assert details(report, "definer_executable") == {
        "public.open_definer()": "SECURITY DEFINER, executable by PUBLIC: it runs with its owner's rights",
        "public.pinned_badly()": f"SECURITY DEFINER, executable by {throwaway.role}, chat_runtime: it runs with"
        " its owner's rights",
    }


def test_functions_called_by_policies_and_definer_code_pin_search_path(throwaway: Throwaway) -> None:
    pinned = "SET search_path = pg_catalog, pg_temp"
    throwaway.break_it(
        "CREATE SCHEMA helpers",
        "CREATE FUNCTION helpers.tenant_of(uuid) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT $1 $$",
        f"CREATE FUNCTION helpers.same(uuid) RETURNS uuid LANGUAGE sql STABLE {pinned} AS $$ SELECT $1 $$",
        # A body PostgreSQL parsed: its calls are dependencies in the catalog.
        f"CREATE FUNCTION helpers.atomic_caller(uuid) RETURNS uuid LANGUAGE sql STABLE {pinned}"
        " BEGIN ATOMIC SELECT helpers.tenant_of(helpers.same($1)); END",
        # A PL/pgSQL body: its calls are found by their qualified names.
        f"CREATE FUNCTION helpers.policy_check(uuid) RETURNS boolean LANGUAGE plpgsql STABLE {pinned}"
        " AS $$ BEGIN RETURN helpers.atomic_caller(helpers.same($1)) IS NOT NULL; END $$",
        "GRANT USAGE ON SCHEMA helpers TO chat_runtime",
        "ALTER POLICY sessions_select ON sessions"
        " USING (tenant_id = (SELECT rls.tenant_id()) AND helpers.policy_check(user_id))",
        # A trigger function of pg_catalog's: nothing to pin, but the trigger is not the project's.
        "CREATE TRIGGER skip_noop BEFORE UPDATE ON users"
        " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    )
    report = throwaway.audit()
    assert found(report) == {
        ("function_search_path", "helpers.tenant_of(uuid)"),
        ("drift", "policy public.sessions.sessions_select"),
        ("unexpected_trigger", "public.users.skip_noop"),
    }
    assert details(report, "function_search_path") == {
        "helpers.tenant_of(uuid)": "called by helpers.atomic_caller(uuid), without search_path = pg_catalog,"
        " pg_temp (has: none)"
    }


def test_shadows_on_any_search_path(planted: Throwaway) -> None:
    database = planted.dsn.split("?")[0].rsplit("/", 1)[1]
    planted.break_it(
        "CREATE SCHEMA shadow",
        "CREATE FUNCTION shadow.lower(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'x' $$",
        "CREATE TYPE shadow.uuid AS (a int)",
        f'ALTER ROLE "{planted.role}" IN DATABASE "{database}" SET search_path = shadow, public',
        "CREATE SCHEMA ignored",  # on no search_path
        "CREATE FUNCTION ignored.upper(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'x' $$",
    )
    try:
        report = planted.audit()
    finally:
        asyncio.run(execute(planted.dsn, f'ALTER ROLE "{planted.role}" IN DATABASE "{database}" RESET ALL'))
    assert found(report) == {
        ("catalog_shadowing", "shadow.lower(character varying)"),
        ("catalog_shadowing", "shadow.uuid"),
    }
    assert details(report, "catalog_shadowing")["shadow.uuid"] == (
        f"type named like pg_catalog's uuid, in schema shadow on the search_path of the setting of {planted.role}"
        f" in {database}: it can win resolution over pg_catalog's"
    )


# --- output -------------------------------------------------------------------------------------


def test_cli_reports_a_broken_database_and_exits_1(
    throwaway: Throwaway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    throwaway.break_it("ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY", "DROP POLICY sessions_update ON sessions")
    monkeypatch.setenv("DATABASE_URL", throwaway.dsn)
    monkeypatch.setenv("APP_DATABASE_URL", throwaway.runtime_dsn)
    assert main(["rls", "audit"]) == 1
    out = capsys.readouterr().out
    assert "rls_forced             FAIL 1" in out
    assert "policy_coverage        FAIL 1" in out
    assert "  ERROR public.sessions\n        row-level security is not FORCED: the owner bypasses it" in out
    assert "  fix: ALTER TABLE … FORCE ROW LEVEL SECURITY." in out
    assert out.rstrip().endswith("3 error(s) (1 warning)")
    assert main(["rls", "audit", "--json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["clean"] is False
    assert {c["name"] for c in body["checks"] if not c["ok"]} == {"rls_forced", "policy_coverage", "drift", "migrator"}
    assert {(f["name"], f["object"]) for f in body["findings"]} == {
        ("rls_forced", "public.sessions"),
        ("policy_coverage", "public.sessions"),
        ("drift", "policy public.sessions.sessions_update"),
        ("migrator", body["migrator"]),
    }
    forced = next(f for f in body["findings"] if f["name"] == "rls_forced")
    assert forced == {
        "name": "rls_forced",
        "title": "RLS forced on every tenant table",
        "level": "ERROR",
        "object": "public.sessions",
        "description": CHECKS["rls_forced"].description,
        "detail": "row-level security is not FORCED: the owner bypasses it",
        "remediation": "ALTER TABLE … FORCE ROW LEVEL SECURITY.",
        "cache_key": "rls_forced:public.sessions",
    }
    assert json.loads(render_json(throwaway.audit()))["findings"] == body["findings"]  # stable across runs


def test_findings_are_excluded_by_key(
    throwaway: Throwaway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    throwaway.break_it("GRANT TRUNCATE ON messages TO PUBLIC")
    monkeypatch.setenv("DATABASE_URL", throwaway.dsn)
    monkeypatch.setenv("APP_DATABASE_URL", throwaway.runtime_dsn)
    key = "unexpected_grant:TRUNCATE_on_public.messages_to_PUBLIC"
    migrator = f"migrator:{throwaway.audit().migrator}"
    assert main(["rls", "audit", "--exclude", key, "--exclude", migrator, "--exclude", "drift:nothing"]) == 0
    out = capsys.readouterr().out
    assert f"excluded by key (2): {migrator}, {key}" in out or f"excluded by key (2): {key}, {migrator}" in out
    assert "no finding has the key: drift:nothing" in out
    assert out.rstrip().endswith("clean: no errors")
    assert main(["rls", "audit", "--json", "--exclude", key]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [f["cache_key"] for f in body["excluded"]] == [key]
    assert [f["name"] for f in body["findings"]] == ["migrator"]
    assert main(["rls", "audit"]) == 1
    assert "unexpected_grant       FAIL 1" in capsys.readouterr().out


def test_findings_keep_distinct_keys(planted: Throwaway) -> None:
    for name in sorted(PLANTS):
        planted.break_it(*statements(name, planted))
    report = planted.audit()
    keys = [f.cache_key for f in report.findings]
    assert len(keys) == len(set(keys))
    assert all(" " not in key for key in keys)
    assert Finding("drift", "function rls.role()", "x").cache_key == "drift:function_rls.role()"
