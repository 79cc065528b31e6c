"""``python -m app rls audit`` against real violations.

Each test breaks a throwaway copy of an upgraded database on purpose (``CREATE DATABASE …
TEMPLATE``), runs the audit, and checks that it reports exactly that violation. The
throwaway databases use their own runtime role, so breaking a role never touches the
``chat_app`` role the rest of the suite runs as.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from app.audit import AuditConnectionError, Finding, Report, render_json, render_table, run_audit
from app.cli import main
from tests.conftest import TestDatabase as Database
from tests.security.conftest import Throwaway, as_role


def findings(report: Report, check: str) -> list[Finding]:
    """The report's findings of one check."""
    return [f for f in report.findings if f.check == check]


def only(report: Report, *checks: str) -> None:
    """The report has findings, and only of ``checks``."""
    assert report.findings, "the audit found nothing"
    assert {f.check for f in report.findings} <= set(checks), report.findings


# --- a clean database ---------------------------------------------------------------------------


def test_clean_copy_has_no_findings(throwaway: Throwaway) -> None:
    report = throwaway.audit()
    assert report.clean, report.findings
    assert report.tenant_tables == [
        "public.agent_configs",
        "public.messages",
        "public.session_counts",
        "public.sessions",
        "public.tenants",
        "public.users",
    ]
    assert report.policies == 21
    assert throwaway.role in report.runtime_roles
    assert "chat_runtime" in report.runtime_roles
    assert render_table(report).endswith("clean: no findings")


def test_cli_on_the_suite_database_exits_0(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    monkeypatch.setenv("APP_DATABASE_URL", database.runtime_dsn)
    assert main(["rls", "audit"]) == 0
    out = capsys.readouterr().out
    assert "clean: no findings" in out
    assert "policy_drift            ok" in out
    assert main(["rls", "audit", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["clean"] is True
    assert body["findings"] == []
    assert all(check["ok"] for check in body["checks"])
    assert "chat_app" in body["runtime_roles"]


def test_cli_exits_2_when_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    assert main(["rls", "audit"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    with pytest.raises(AuditConnectionError):
        asyncio.run(run_audit("postgresql://postgres@127.0.0.1:1/nowhere", "chat_app", connect_timeout=2))


# --- tables -------------------------------------------------------------------------------------


def test_rls_disabled(throwaway: Throwaway) -> None:
    throwaway.break_it("ALTER TABLE sessions DISABLE ROW LEVEL SECURITY")
    report = throwaway.audit()
    only(report, "rls_enabled")
    assert findings(report, "rls_enabled") == [
        Finding("rls_enabled", "public.sessions", "row-level security is disabled")
    ]


def test_force_removed(throwaway: Throwaway) -> None:
    throwaway.break_it("ALTER TABLE messages NO FORCE ROW LEVEL SECURITY")
    report = throwaway.audit()
    only(report, "rls_forced")
    assert [f.object for f in report.findings] == ["public.messages"]


def test_new_tenant_table_without_rls(throwaway: Throwaway) -> None:
    throwaway.break_it("CREATE TABLE notes (note_id int PRIMARY KEY, tenant_id uuid NOT NULL, body text)")
    report = throwaway.audit()
    only(report, "rls_enabled", "rls_forced", "policy_coverage")
    assert {(f.check, f.object) for f in report.findings} == {
        ("rls_enabled", "public.notes"),
        ("rls_forced", "public.notes"),
        ("policy_coverage", "public.notes"),
    }
    assert findings(report, "policy_coverage")[0].detail == "no permissive policy for SELECT, INSERT, UPDATE, DELETE"


# --- policies -----------------------------------------------------------------------------------


def test_policy_dropped(throwaway: Throwaway) -> None:
    throwaway.break_it("DROP POLICY sessions_delete ON sessions")
    report = throwaway.audit()
    only(report, "policy_coverage", "policy_drift")
    assert findings(report, "policy_coverage") == [
        Finding("policy_coverage", "public.sessions", "no permissive policy for DELETE")
    ]
    drift = findings(report, "policy_drift")
    assert [f.object for f in drift] == ["policy public.sessions.sessions_delete"]
    assert "dropped" in drift[0].detail


def test_policy_edited_by_hand(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "ALTER POLICY sessions_select ON sessions USING (tenant_id = (SELECT rls.tenant_id()))",
        "CREATE OR REPLACE FUNCTION rls.user_id() RETURNS uuid LANGUAGE sql STABLE"
        " AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$",
    )
    report = throwaway.audit()
    only(report, "policy_drift")
    by_object = {f.object: f.detail for f in report.findings}
    assert set(by_object) == {"policy public.sessions.sessions_select", "function rls.user_id()"}
    assert by_object["policy public.sessions.sessions_select"].startswith("changed by hand: qual: live")
    assert "definition" in by_object["function rls.user_id()"]


def test_policies_added_by_hand(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE POLICY audit_peek ON messages AS RESTRICTIVE FOR SELECT USING (true)",
        "CREATE TABLE lookup (code text)",
        "CREATE POLICY lookup_read ON lookup FOR SELECT USING (true)",
    )
    report = throwaway.audit()
    only(report, "policy_drift")
    assert [f.object for f in report.findings] == [
        "policy public.lookup.lookup_read",
        "policy public.messages.audit_peek",
    ]
    assert all("added by hand" in f.detail for f in report.findings)


def test_always_true_policy(throwaway: Throwaway) -> None:
    throwaway.break_it("CREATE POLICY agents_everyone ON agent_configs FOR SELECT USING (true)")
    report = throwaway.audit()
    only(report, "policy_always_true", "policy_drift")
    assert findings(report, "policy_always_true") == [
        Finding(
            "policy_always_true",
            "public.agent_configs.agents_everyone",
            "USING passes a foreign row with another tenant: true",
        )
    ]


def test_policy_open_without_context_or_erroring(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "ALTER POLICY users_access ON users"
        " USING (tenant_id = (SELECT rls.tenant_id()) OR (SELECT rls.tenant_id()) IS NULL)",
        "ALTER POLICY tenants_access ON tenants WITH CHECK (tenant_id = current_setting('app.tenant_id')::uuid)",
    )
    report = throwaway.audit()
    only(report, "policy_always_true", "policy_drift")
    details = {f.object: f.detail for f in findings(report, "policy_always_true")}
    assert set(details) == {"public.users.users_access", "public.tenants.tenants_access"}
    assert details["public.users.users_access"].startswith("USING passes a foreign row with no context")
    assert details["public.tenants.tenants_access"].startswith("cannot evaluate with_check")


def test_policies_missing_their_clause(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "DROP POLICY sessions_select ON sessions",
        "CREATE POLICY sessions_select ON sessions FOR SELECT",
        "DROP POLICY sessions_insert ON sessions",
        "CREATE POLICY sessions_insert ON sessions FOR INSERT",
    )
    report = throwaway.audit()
    only(report, "policy_always_true", "policy_coverage", "policy_drift")
    assert findings(report, "policy_always_true") == [
        Finding("policy_always_true", "public.sessions.sessions_insert", "permissive INSERT policy without WITH CHECK"),
        Finding("policy_always_true", "public.sessions.sessions_select", "permissive SELECT policy without USING"),
    ]
    assert findings(report, "policy_coverage") == [
        Finding("policy_coverage", "public.sessions", "no permissive policy for SELECT, INSERT")
    ]


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
    only(report, "policy_drift")
    assert report.findings[0].object == "rls_policies/"
    assert "lock timeout" in report.findings[0].detail
    assert throwaway.audit().clean  # the rolled-back comparison changed nothing


# --- the runtime role ---------------------------------------------------------------------------


def test_runtime_role_with_bypassrls(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER ROLE "{throwaway.role}" BYPASSRLS')
    report = throwaway.audit()
    assert report.findings == [Finding("runtime_role", throwaway.role, "has BYPASSRLS: RLS does not apply to it")]


def test_runtime_role_superuser(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER ROLE "{throwaway.role}" SUPERUSER')
    report = throwaway.audit()
    only(report, "runtime_role")
    # A superuser also holds every owner's privileges, so it "owns" every tenant table too.
    assert [f.detail.split(":")[0] for f in report.findings] == [
        "is a superuser",
        "owns tenant tables public.agent_configs, public.messages, public.session_counts, public.sessions,"
        " public.tenants, public.users",
    ]


def test_runtime_role_owns_a_tenant_table(throwaway: Throwaway) -> None:
    throwaway.break_it(f'ALTER TABLE agent_configs OWNER TO "{throwaway.role}"')
    report = throwaway.audit()
    assert report.findings == [Finding("runtime_role", throwaway.role, "owns tenant tables public.agent_configs")]


def test_runtime_role_that_does_not_exist(throwaway: Throwaway) -> None:
    report = asyncio.run(run_audit(throwaway.dsn, "no_such_role_here"))
    only(report, "runtime_role")
    assert report.findings[0].object == "no_such_role_here"
    assert "does not exist" in report.findings[0].detail


# --- views and functions ------------------------------------------------------------------------


def test_views_without_security_invoker(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE VIEW session_titles AS SELECT tenant_id, title FROM sessions",
        "CREATE VIEW titles_again AS SELECT title FROM session_titles",
        "CREATE VIEW safe_titles WITH (security_invoker = true) AS SELECT title FROM sessions",
        "CREATE MATERIALIZED VIEW message_totals AS SELECT tenant_id, count(*) FROM messages GROUP BY 1",
        "CREATE VIEW unrelated AS SELECT 1 AS one",
    )
    report = throwaway.audit()
    only(report, "view_security_invoker")
    assert [(f.object, f.detail.split(" ")[0]) for f in report.findings] == [
        ("public.message_totals", "materialized"),
        ("public.session_titles", "view"),
        ("public.titles_again", "view"),
    ]


def test_security_definer_function_without_search_path(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "CREATE FUNCTION count_all_sessions() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT count(*) FROM public.sessions $$",
        "CREATE FUNCTION pinned() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog"
        " AS $$ SELECT 1 $$",
    )
    report = throwaway.audit()
    assert report.findings == [
        Finding("definer_search_path", "count_all_sessions()", "SECURITY DEFINER without a fixed search_path")
    ]


# --- output -------------------------------------------------------------------------------------


def test_cli_reports_a_broken_database_and_exits_1(
    throwaway: Throwaway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    throwaway.break_it("ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY", "DROP POLICY sessions_update ON sessions")
    monkeypatch.setenv("DATABASE_URL", throwaway.dsn)
    monkeypatch.setenv("APP_DATABASE_URL", as_role(throwaway.dsn, throwaway.role, "y" * 16))
    assert main(["rls", "audit"]) == 1
    out = capsys.readouterr().out
    assert "rls_forced              FAIL 1" in out
    assert "policy_coverage         FAIL 1" in out
    assert "public.sessions" in out
    assert out.rstrip().endswith("3 finding(s)")
    assert main(["rls", "audit", "--json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["clean"] is False
    assert {c["check"] for c in body["checks"] if not c["ok"]} == {"rls_forced", "policy_coverage", "policy_drift"}
    assert {(f["check"], f["object"]) for f in body["findings"]} == {
        ("rls_forced", "public.sessions"),
        ("policy_coverage", "public.sessions"),
        ("policy_drift", "policy public.sessions.sessions_update"),
    }
    assert json.loads(render_json(throwaway.audit()))["findings"] == body["findings"]
