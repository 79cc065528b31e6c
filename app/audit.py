"""``python -m app rls audit``: prove, on a live database, that tenant isolation holds.

Checks (each finding names the check, the object and what is wrong):

- ``rls_enabled`` / ``rls_forced``: every table with a ``tenant_id`` column has row-level
  security ENABLED and FORCED (without FORCE the table owner bypasses it).
- ``policy_coverage``: permissive policies cover SELECT, INSERT, UPDATE and DELETE (ALL counts
  for all); a policy lacking the clause a command needs grants nothing, so it does not count.
- ``policy_always_true``: no permissive policy lets a row through for a request of another
  tenant, or for a request without any context. Each clause is evaluated against a row of
  tenant Y, once with the context of a random tenant X and once with no context; it must
  never be true. A permissive policy missing its USING (SELECT/UPDATE/DELETE/ALL) or WITH
  CHECK (INSERT) is reported too: PostgreSQL then denies, but the policy is not what its
  author meant.
- ``runtime_role``: the API's role (``APP_DATABASE_URL``), the group ``chat_runtime`` and its
  members are not superusers, have no BYPASSRLS and own no tenant table.
- ``view_security_invoker``: no view reaches a tenant table without ``security_invoker``
  (such a view runs as its owner, bypassing RLS); no materialized view stores tenant rows.
- ``definer_search_path``: every SECURITY DEFINER function pins ``search_path``.
- ``policy_drift``: the live policies and ``rls.*`` functions are exactly what
  ``rls_policies/*.sql`` define. Measured in a transaction that is always rolled back: drop
  the ``rls`` schema and every policy, apply the files, snapshot, compare with the live
  snapshot. It takes brief ACCESS EXCLUSIVE locks on the tenant tables, bounded by
  ``lock_timeout`` so it never stalls production for long.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import asyncpg

from app.db.context import set_context
from app.db.policies import apply_policies
from app.db.upgrade import GROUP_ROLE

CHECKS = {
    "rls_enabled": "RLS enabled on every tenant table",
    "rls_forced": "RLS forced on every tenant table",
    "policy_coverage": "policies cover SELECT, INSERT, UPDATE, DELETE",
    "policy_always_true": "no always-true or empty policy",
    "runtime_role": "runtime role: no superuser, no BYPASSRLS, owns no tenant table",
    "view_security_invoker": "no view over a tenant table without security_invoker",
    "definer_search_path": "SECURITY DEFINER functions pin search_path",
    "policy_drift": "live policies match rls_policies/*.sql",
}
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"

TENANT_TABLES = f"""
SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN {SYSTEM_SCHEMAS}
ORDER BY 2
"""

POLICIES = f"""
SELECT format('%I.%I', schemaname, tablename) AS table_name, policyname, permissive, roles::text[] AS roles,
       cmd, qual, with_check
FROM pg_policies
WHERE schemaname NOT IN {SYSTEM_SCHEMAS}
ORDER BY 1, 2
"""

DROP_POLICIES = f"""
SELECT format('DROP POLICY %I ON %I.%I', policyname, schemaname, tablename) AS sql
FROM pg_policies WHERE schemaname NOT IN {SYSTEM_SCHEMAS}
"""

RLS_FUNCTIONS = """
SELECT p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'rls'
ORDER BY 1
"""

# The runtime login, the group role and (recursively) the group's members.
RUNTIME_ROLES = """
WITH RECURSIVE members(oid) AS (
    SELECT oid FROM pg_roles WHERE rolname = ANY($1::text[])
    UNION
    SELECT m.member FROM pg_auth_members m JOIN members ON m.roleid = members.oid
)
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       array(SELECT t.name FROM unnest($2::oid[], $3::text[]) AS t(oid, name)
             JOIN pg_class c ON c.oid = t.oid
             WHERE pg_has_role(r.oid, c.relowner, 'USAGE') ORDER BY 1) AS owned
FROM pg_roles r JOIN members USING (oid)
ORDER BY 1
"""

# Views reaching a tenant table directly or through other views.
VIEWS = f"""
WITH RECURSIVE reach(view_oid, table_oid) AS (
    SELECT r.ev_class, d.refobjid
    FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                     AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
    UNION
    SELECT reach.view_oid, d.refobjid
    FROM reach
    JOIN pg_rewrite r ON r.ev_class = reach.table_oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                     AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
)
SELECT DISTINCT format('%I.%I', n.nspname, v.relname) AS name, v.relkind::text AS relkind,
       coalesce(v.reloptions @> '{{security_invoker=true}}' OR v.reloptions @> '{{security_invoker=on}}'
                OR v.reloptions @> '{{security_invoker=1}}', false) AS invoker
FROM reach
JOIN pg_class v ON v.oid = reach.view_oid
JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE reach.table_oid = ANY($1::oid[]) AND v.relkind IN ('v', 'm') AND n.nspname NOT IN {SYSTEM_SCHEMAS}
ORDER BY 1
"""

DEFINER_FUNCTIONS = f"""
SELECT p.oid::regprocedure::text AS name
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN {SYSTEM_SCHEMAS}
  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS s WHERE s LIKE 'search_path=%')
ORDER BY 1
"""


class AuditConnectionError(Exception):
    """The database could not be reached (the CLI exits 2)."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong: which check, on which object, and what."""

    check: str
    object: str
    detail: str


@dataclass
class Report:
    """The outcome of one audit."""

    database: str
    tenant_tables: list[str] = field(default_factory=list)
    policies: int = 0
    runtime_roles: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing was found."""
        return not self.findings

    def add(self, check: str, obj: str, detail: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(check, obj, detail))


def describe(dsn: str) -> str:
    """``role@host:port/database`` of a DSN (never its password)."""
    parts = urlsplit(dsn)
    return f"{parts.username or ''}@{parts.hostname or ''}:{parts.port or 5432}{parts.path or ''}"


def _clause_needed(cmd: str) -> tuple[str, ...]:
    """The clauses a permissive policy needs for ``cmd`` to grant anything."""
    return {"SELECT": ("qual",), "DELETE": ("qual",), "INSERT": ("with_check",)}.get(cmd, ("qual",))


def check_tables(report: Report, tables: Sequence[asyncpg.Record]) -> None:
    """``rls_enabled`` and ``rls_forced``."""
    for table in tables:
        if not table["relrowsecurity"]:
            report.add("rls_enabled", table["name"], "row-level security is disabled")
        if not table["relforcerowsecurity"]:
            report.add("rls_forced", table["name"], "row-level security is not FORCED: the owner bypasses it")


def check_coverage(report: Report, tables: Iterable[str], policies: Sequence[asyncpg.Record]) -> None:
    """``policy_coverage`` and the missing-clause half of ``policy_always_true``."""
    covered: dict[str, set[str]] = {name: set() for name in tables}
    for policy in policies:
        if policy["table_name"] not in covered or policy["permissive"] != "PERMISSIVE":
            continue
        missing = [clause for clause in _clause_needed(policy["cmd"]) if policy[clause] is None]
        if missing:
            report.add(
                "policy_always_true",
                f"{policy['table_name']}.{policy['policyname']}",
                f"permissive {policy['cmd']} policy without {'USING' if missing == ['qual'] else 'WITH CHECK'}",
            )
            continue
        covered[policy["table_name"]].update(COMMANDS if policy["cmd"] == "ALL" else (policy["cmd"],))
    for table, commands in covered.items():
        absent = [cmd for cmd in COMMANDS if cmd not in commands]
        if absent:
            report.add("policy_coverage", table, "no permissive policy for " + ", ".join(absent))


async def check_always_true(
    connection: asyncpg.Connection, report: Report, tables: Iterable[str], policies: Sequence[asyncpg.Record]
) -> None:
    """``policy_always_true``: each clause, on a row of tenant Y, must not pass for tenant X nor without context."""
    tenant_tables = set(tables)
    for policy in policies:
        if policy["table_name"] not in tenant_tables or policy["permissive"] != "PERMISSIVE":
            continue
        table = policy["table_name"]
        alias = table.split(".", 1)[1]
        for clause in ("qual", "with_check"):
            if policy[clause] is None:
                continue
            row = f"json_populate_record(NULL::{table}, json_build_object('tenant_id', $1::text))"
            sql = f"SELECT EXISTS (SELECT 1 FROM {row} AS {alias} WHERE {policy[clause]})"
            for context in ("another tenant", "no context"):
                name = f"{table}.{policy['policyname']}"
                try:
                    async with connection.transaction(readonly=True):
                        if context == "another tenant":
                            await set_context(connection, uuid.uuid4(), uuid.uuid4())
                        passes = await connection.fetchval(sql, str(uuid.uuid4()))
                except asyncpg.PostgresError as error:
                    report.add("policy_always_true", name, f"cannot evaluate {clause}: {error}")
                    break
                if passes:
                    what = "USING" if clause == "qual" else "WITH CHECK"
                    detail = f"{what} passes a foreign row with {context}: {policy[clause]}"
                    report.add("policy_always_true", name, detail)
                    break


async def check_runtime_roles(
    connection: asyncpg.Connection, report: Report, runtime_role: str, tables: Sequence[asyncpg.Record]
) -> None:
    """``runtime_role``: the login, ``chat_runtime`` and its members."""
    rows = await connection.fetch(
        RUNTIME_ROLES,
        [runtime_role, GROUP_ROLE],
        [t["oid"] for t in tables],
        [t["name"] for t in tables],
    )
    report.runtime_roles = [row["rolname"] for row in rows]
    if runtime_role not in report.runtime_roles:
        report.add("runtime_role", runtime_role, "the runtime role does not exist (run `python -m app db upgrade`)")
    for row in rows:
        if row["rolsuper"]:
            report.add("runtime_role", row["rolname"], "is a superuser: RLS does not apply to it")
        if row["rolbypassrls"]:
            report.add("runtime_role", row["rolname"], "has BYPASSRLS: RLS does not apply to it")
        if row["owned"]:
            report.add("runtime_role", row["rolname"], "owns tenant tables " + ", ".join(row["owned"]))


async def check_views_and_functions(
    connection: asyncpg.Connection, report: Report, tables: Sequence[asyncpg.Record]
) -> None:
    """``view_security_invoker`` and ``definer_search_path``."""
    for view in await connection.fetch(VIEWS, [t["oid"] for t in tables]):
        if view["relkind"] == "m":
            report.add("view_security_invoker", view["name"], "materialized view stores tenant rows outside RLS")
        elif not view["invoker"]:
            detail = "view over a tenant table runs as its owner (no security_invoker)"
            report.add("view_security_invoker", view["name"], detail)
    for function in await connection.fetch(DEFINER_FUNCTIONS):
        report.add("definer_search_path", function["name"], "SECURITY DEFINER without a fixed search_path")


async def _snapshot(connection: asyncpg.Connection) -> dict[str, dict[str, object]]:
    snapshot: dict[str, dict[str, object]] = {}
    for row in await connection.fetch(POLICIES):
        snapshot[f"policy {row['table_name']}.{row['policyname']}"] = {
            "permissive": row["permissive"],
            "roles": sorted(row["roles"]),
            "cmd": row["cmd"],
            "qual": row["qual"],
            "with_check": row["with_check"],
        }
    for row in await connection.fetch(RLS_FUNCTIONS):
        snapshot[f"function {row['name']}"] = {"definition": row["definition"]}
    return snapshot


async def check_drift(connection: asyncpg.Connection, report: Report, lock_timeout: str) -> None:
    """``policy_drift``: live policies versus what ``rls_policies/*.sql`` create (in a rolled-back transaction)."""
    live = await _snapshot(connection)
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute("SELECT set_config('lock_timeout', $1, true)", lock_timeout)
        await connection.execute("DROP SCHEMA IF EXISTS rls CASCADE")
        for statement in await connection.fetch(DROP_POLICIES):
            await connection.execute(statement["sql"])
        await apply_policies(connection)
        expected = await _snapshot(connection)
    except asyncpg.PostgresError as error:
        report.add("policy_drift", "rls_policies/", f"could not compare (nothing was changed): {error}")
        return
    finally:
        await transaction.rollback()
    for key in sorted(live.keys() | expected.keys()):
        if key not in expected:
            report.add("policy_drift", key, "exists in the database but not in rls_policies/ (added by hand)")
        elif key not in live:
            report.add("policy_drift", key, "defined in rls_policies/ but missing from the database (dropped)")
        elif live[key] != expected[key]:
            changed = [k for k in expected[key] if live[key][k] != expected[key][k]]
            detail = "; ".join(f"{k}: live {live[key][k]!r}, files {expected[key][k]!r}" for k in changed)
            report.add("policy_drift", key, "changed by hand: " + detail)


async def run_audit(
    owner_dsn: str, runtime_role: str, *, lock_timeout: str = "2s", connect_timeout: float = 10.0
) -> Report:
    """Audit the database of ``owner_dsn`` for the API role ``runtime_role``.

    Raises ``AuditConnectionError`` when it cannot connect.
    """
    try:
        connection = await asyncpg.connect(owner_dsn, timeout=connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise AuditConnectionError(f"cannot connect to {describe(owner_dsn)}: {error}") from error
    try:
        report = Report(database=describe(owner_dsn))
        tables = await connection.fetch(TENANT_TABLES)
        policies = await connection.fetch(POLICIES)
        report.tenant_tables = [t["name"] for t in tables]
        report.policies = len(policies)
        check_tables(report, tables)
        check_coverage(report, report.tenant_tables, policies)
        await check_always_true(connection, report, report.tenant_tables, policies)
        await check_runtime_roles(connection, report, runtime_role, tables)
        await check_views_and_functions(connection, report, tables)
        await check_drift(connection, report, lock_timeout)
        return report
    finally:
        await connection.close()


def render_json(report: Report) -> str:
    """The report as JSON (``--json``)."""
    body = {
        "database": report.database,
        "clean": report.clean,
        "tenant_tables": report.tenant_tables,
        "policies": report.policies,
        "runtime_roles": report.runtime_roles,
        "checks": [
            {"check": name, "description": text, "ok": not any(f.check == name for f in report.findings)}
            for name, text in CHECKS.items()
        ],
        "findings": [asdict(f) for f in report.findings],
    }
    return json.dumps(body, indent=2)


def render_table(report: Report) -> str:
    """The report as a readable table (the default)."""
    lines = [
        f"RLS audit of {report.database}",
        f"tenant tables: {', '.join(report.tenant_tables) or '(none)'}",
        f"runtime roles: {', '.join(report.runtime_roles) or '(none)'}; policies: {report.policies}",
        "",
        f"{'check':<23} {'result':<7} description",
    ]
    for name, text in CHECKS.items():
        failed = sum(f.check == name for f in report.findings)
        lines.append(f"{name:<23} {('FAIL ' + str(failed)) if failed else 'ok':<7} {text}")
    if report.findings:
        width = max(len(f.object) for f in report.findings)
        lines += ["", f"{'check':<23} {'object':<{width}} finding"]
        lines += [f"{f.check:<23} {f.object:<{width}} {f.detail}" for f in report.findings]
    lines += ["", f"{len(report.findings)} finding(s)" if report.findings else "clean: no findings"]
    return "\n".join(lines)
