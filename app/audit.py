"""``python -m app rls audit``: prove, on a live database, that tenant isolation holds.

The audit connects as the owner (``DATABASE_URL``), reads the catalogs, and judges them for
the runtime role (``APP_DATABASE_URL``'s role). It pins its own ``search_path`` to
``pg_catalog, pg_temp``, so nothing planted in another schema changes its queries, and it
writes nothing outside one transaction that is always rolled back (below).

Words used below. The runtime role *reaches* what it, PUBLIC, or any role it can become
(every role it is a member of, directly or through others: ``SET ROLE``) holds a privilege
on. A *tenant table* is a table with a ``tenant_id`` column, a table of ``rls_policies/``,
or any table the runtime role reaches, whatever its tenant column is called; only the
tables of ``NON_TENANT_TABLES`` are exempt.

Checks (``CHECKS`` holds each one's description and remediation):

- ``rls_enabled`` / ``rls_forced``: every tenant table has row-level security ENABLED and FORCED.
- ``tenant_floor``: every tenant table has its RESTRICTIVE floor, FOR ALL, USING and WITH
  CHECK ``<tenant column> = (SELECT rls.tenant_id())``, binding the runtime role.
- ``policy_to_public``: no policy is TO PUBLIC.
- ``policy_coverage``: permissive policies cover SELECT, INSERT, UPDATE and DELETE on every
  table with a ``tenant_id`` column (ALL counts for all; a policy lacking its clause does not).
  The tables of ``APPEND_ONLY_TABLES`` need SELECT and INSERT only (and ``append_only`` holds for them).
- ``append_only``: on every table of ``APPEND_ONLY_TABLES`` (``access_log``), no UPDATE, DELETE or
  TRUNCATE granted to anyone, no permissive UPDATE, DELETE or ALL policy for a role the runtime
  role belongs to, no trigger or rule on it (one could drop or rewrite what the read path records),
  and no trigger function or rule anywhere that updates, deletes or truncates it.
- ``policy_always_true``: no permissive policy lets a row of tenant Y through for a request of
  tenant X or without context (each clause is evaluated on such a row), and none lacks the
  clause its command needs.
- ``runtime_role``: neither the runtime role nor a role it can become is a superuser or has
  BYPASSRLS or CREATEROLE; no member of ``chat_runtime`` (or of the runtime role) bypasses RLS.
  ``app/db/selfcheck.py`` refuses to serve in the same cases (its ``REACH_SQL`` is used here).
- ``runtime_privileges``: the runtime role has no TEMPORARY or CREATE on the database and no
  CREATE on any schema (a temporary table named ``sessions`` shadows the real one).
- ``ownership``: no table, view, sequence, function, schema, nor the database, is owned by a
  role the runtime role can become.
- ``migrator``: a WARNING when the migrator is superuser or BYPASSRLS (FORCE does not bind it).
- ``view_security_invoker``: no view over a tenant table, and no view the runtime role reaches,
  runs without ``security_invoker``; no materialized view holds tenant rows or is reachable.
- ``function_search_path``: every function a policy, a trigger or a SECURITY DEFINER function
  runs, and every function those call by a qualified name, has ``search_path = pg_catalog,
  pg_temp``. (With that path an unqualified call can only reach pg_catalog, since PostgreSQL
  never looks up functions or operators in pg_temp; names built by dynamic SQL are not seen.)
- ``definer_executable``: no SECURITY DEFINER function that the runtime role or PUBLIC can
  execute, but those of ``KNOWN_DEFINER_FUNCTIONS`` (trigger functions cannot be called).
- ``catalog_shadowing``: no function, operator or type named like a pg_catalog one in a schema
  on any search_path in use (the server default, database and role settings, functions' SET).
- ``unexpected_policy`` / ``unexpected_trigger`` / ``unexpected_rule`` / ``unexpected_grant``:
  additions; see below. ``unexpected_grant`` also reports, without needing the replay, every
  TRUNCATE, TRIGGER or REFERENCES on a tenant table to anyone but its owner, and anything to PUBLIC.
- ``drift``: the project's objects changed or missing; see below.

Drift and additions. The expected state is what ``db upgrade`` creates: in a transaction that
is always rolled back, the audit drops what the files create (the ``rls`` schema, the functions
of ``public``, every policy, and the triggers, rules and grants of the tenant tables), runs
``app.db.policies.apply_policies``, and snapshots policies, functions (body, security,
settings, volatility, owner), triggers, rules and grants, before and after. Each difference has one owner:

- an object of the replay that is missing or different live is ``drift``;
- an object live that the replay does not create is an addition: a policy, trigger, rule or
  grant is reported by its ``unexpected_*`` check; an added function is judged only by the
  rules above (``function_search_path``, ``definer_executable``, ``catalog_shadowing``,
  ``ownership``), since the database may hold functions of its own.

The rule-based checks judge every object, the project's included, so a change to a project
object that also breaks a rule is reported twice, once by each owner: ``drift`` says what
changed, the rule why it matters (an ``rls`` function handed to the runtime role is drift of
its owner, and ``ownership``). The rule-based checks need no replay, so they hold on a hot standby.

The replay takes brief ACCESS EXCLUSIVE locks on the tenant tables, bounded by
``lock_timeout`` (2 s): when it cannot have them it reports ``drift`` (ERROR, "could not
compare") instead of waiting. On a read-only server (a hot standby) it does not run at all:
``drift`` is then a WARNING saying so, and the additions are judged by the rules alone (run the
audit against the primary for the rest).

Output: ``render_table`` (for a DBA) or ``render_json``: one object per finding, after
Supabase's splinter lints (``name, title, level, object, description, detail, remediation,
cache_key``). ``cache_key`` is ``<name>:<object>`` (whitespace as ``_``), stable across runs;
``exclude`` (the CLI's ``--exclude KEY``, repeatable) moves findings with those keys aside.
The audit is clean when no ERROR remains; WARNINGs do not make it unclean.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from app.db.context import set_context
from app.db.policies import apply_policies, policy_tables
from app.db.selfcheck import REACH_SQL
from app.db.upgrade import GROUP_ROLE

ERROR, WARN = "ERROR", "WARN"


@dataclass(frozen=True)
class Check:
    """What one check proves, and what to do about a finding."""

    title: str
    description: str
    remediation: str
    level: str = ERROR


CHECKS: dict[str, Check] = {
    "rls_enabled": Check(
        "RLS enabled on every tenant table",
        "Every tenant table (a tenant_id column, a table of rls_policies/, or any table the runtime role can reach"
        " directly, through PUBLIC or through a role it can become, whatever its tenant column is called) has"
        " row-level security enabled. Only the tables of NON_TENANT_TABLES are exempt.",
        "ALTER TABLE … ENABLE ROW LEVEL SECURITY and give it a tenant floor, or revoke the runtime role's access;"
        " `db upgrade` restores the project's tables.",
    ),
    "rls_forced": Check(
        "RLS forced on every tenant table",
        "Every tenant table has row-level security FORCED: without it the table's owner bypasses the policies.",
        "ALTER TABLE … FORCE ROW LEVEL SECURITY.",
    ),
    "tenant_floor": Check(
        "a RESTRICTIVE tenant floor on every tenant table",
        "Every tenant table has a RESTRICTIVE policy FOR ALL whose USING and WITH CHECK are both"
        " <tenant column> = (SELECT rls.tenant_id()), for a role the runtime role belongs to: whatever the"
        " permissive policies allow, never a row of another tenant.",
        "CREATE POLICY <table>_tenant_floor ON <table> AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator"
        " USING (tenant_id = (SELECT rls.tenant_id())) WITH CHECK (tenant_id = (SELECT rls.tenant_id())).",
    ),
    "policy_to_public": Check(
        "no policy TO PUBLIC",
        "No policy applies TO PUBLIC (every role, present and future): the policies name the runtime group and"
        " the migrator's group.",
        "ALTER POLICY … TO chat_runtime, chat_migrator, or drop it.",
    ),
    "policy_coverage": Check(
        "policies cover SELECT, INSERT, UPDATE, DELETE",
        "On every table with a tenant_id column, permissive policies cover SELECT, INSERT, UPDATE and DELETE"
        " (ALL counts for all); a policy lacking the clause its command needs grants nothing.",
        "Add the missing policy to rls_policies/ and run `db upgrade`.",
    ),
    "append_only": Check(
        "append-only tables stay append-only",
        "Nobody but the owner may change or delete an entry of an append-only table (APPEND_ONLY_TABLES:"
        " access_log): no UPDATE, DELETE or TRUNCATE grant, no permissive UPDATE, DELETE or ALL policy binding the"
        " runtime role, no trigger or rule on the table, and no trigger function or rule that writes to it.",
        "REVOKE UPDATE, DELETE, TRUNCATE ON … FROM …; drop the policy, trigger or rule; `db upgrade` restores the"
        " files'.",
    ),
    "policy_always_true": Check(
        "no always-true or empty policy",
        "No permissive policy lets a row of tenant Y through for a request of tenant X, or for a request"
        " without context (each USING and WITH CHECK is evaluated on such a row), and none lacks the clause its"
        " command needs.",
        "Compare the tenant column with (SELECT rls.tenant_id()) in the policy; `db upgrade` restores the files'.",
    ),
    "unexpected_policy": Check(
        "no policy beyond rls_policies/",
        "Every policy is one that rls_policies/ creates (compared with the rolled-back replay of db upgrade's"
        " policy step). An added permissive policy can widen what a role sees without crossing tenants,"
        " e.g. a supporter reading a colleague's sessions.",
        "DROP POLICY it, or add it to rls_policies/ after review; `db upgrade` drops the policies the files"
        " do not create.",
    ),
    "runtime_role": Check(
        "runtime role: no superuser, BYPASSRLS or CREATEROLE within reach",
        "Neither the runtime role nor any role it can become (a member of it, directly or through other roles:"
        " SET ROLE) is a superuser or has BYPASSRLS (RLS does not apply to them) or CREATEROLE (a way to the"
        " others), and no member of the runtime group chat_runtime, or of the runtime role, bypasses RLS."
        " The server refuses to start in the same cases.",
        "REVOKE the membership (REVOKE <role> FROM <runtime role>), or ALTER ROLE … NOSUPERUSER NOBYPASSRLS"
        " NOCREATEROLE.",
    ),
    "runtime_privileges": Check(
        "runtime role: no TEMP, no CREATE",
        "The runtime role, a role it can become, or PUBLIC holds no TEMPORARY or CREATE on the database and no"
        " CREATE on any schema: a temporary table named sessions shadows the real one for unqualified names,"
        " and a function or operator created in a schema on a search_path changes what SQL means.",
        "REVOKE TEMPORARY, CREATE ON DATABASE … FROM PUBLIC; REVOKE CREATE ON SCHEMA … FROM PUBLIC (and from"
        " the role named).",
    ),
    "ownership": Check(
        "runtime role owns nothing",
        "No table, view, sequence, function or schema, nor the database, is owned by the runtime role or a role"
        " it can become: an owner may disable row-level security, drop policies, or ALTER a function the"
        " policies trust (a function-level value of app.tenant_id on rls.tenant_id() makes every query read another"
        " tenant).",
        "ALTER … OWNER TO the migrator (the role of DATABASE_URL).",
    ),
    "migrator": Check(
        "migrator bound by FORCE (no superuser, no BYPASSRLS)",
        "The migrator (the role of DATABASE_URL) owns the tables and the SECURITY DEFINER trigger function."
        " FORCE ROW LEVEL SECURITY binds an owner only when it is neither superuser nor BYPASSRLS; a bypassing"
        " migrator works (db seed sets a context either way), but every function, rule or view it owns then"
        " bypasses RLS too.",
        "Run migrations as a plain owner role (NOSUPERUSER NOBYPASSRLS), member of chat_migrator.",
        WARN,
    ),
    "view_security_invoker": Check(
        "no view bypassing RLS",
        "No view over a tenant table, and no view the runtime role can reach, runs without security_invoker"
        " (such a view reads as its owner); no materialized view stores tenant rows or is reachable.",
        "ALTER VIEW … SET (security_invoker = true); drop materialized views of tenant rows.",
    ),
    "function_search_path": Check(
        "policy, trigger and definer functions pin search_path",
        "Every function that a policy, a trigger or a SECURITY DEFINER function runs, and every function those"
        " call by a schema-qualified name, has search_path = pg_catalog, pg_temp: nothing created in another"
        " schema (a function, an operator, a temporary table) can change what it does.",
        "ALTER FUNCTION … SET search_path = pg_catalog, pg_temp, and qualify the names it uses with their schema.",
    ),
    "definer_executable": Check(
        "no SECURITY DEFINER function for the runtime role",
        "No SECURITY DEFINER function can be executed by the runtime role or PUBLIC, except those of"
        " KNOWN_DEFINER_FUNCTIONS: it runs with its owner's rights, so its caller reads what its owner reads."
        " Trigger functions are not counted: nobody can call them.",
        "REVOKE EXECUTE ON FUNCTION … FROM PUBLIC, chat_runtime; or drop it.",
    ),
    "catalog_shadowing": Check(
        "nothing on a search_path shadows pg_catalog",
        "No function, operator or type in a schema on a search_path in use (the server default, every database"
        " and role setting, every function's SET search_path; $user expanded) has the name of a pg_catalog"
        " object: a closer match wins resolution, so public.=(varchar, varchar) hijacks role = 'admin' in SQL"
        " that resolves names through public.",
        "DROP it, or move it to a schema that no search_path names.",
    ),
    "unexpected_trigger": Check(
        "no trigger on tenant tables beyond the project's",
        "No trigger on a tenant table other than those rls_policies/ creates: a trigger runs on every write,"
        " a SECURITY DEFINER one with its owner's rights.",
        "DROP TRIGGER … ON ….",
    ),
    "unexpected_rule": Check(
        "no rule on tenant tables",
        "No rule on a tenant table beyond those rls_policies/ creates (none): a rule rewrites every matching"
        " query, and its actions run with the table owner's rights.",
        "DROP RULE … ON ….",
    ),
    "unexpected_grant": Check(
        "no grant beyond rls_policies/",
        "No grant on a tenant table, a project function or schema rls beyond those rls_policies/ creates; never"
        " TRUNCATE, TRIGGER or REFERENCES on a tenant table to anyone but its owner, nor anything to PUBLIC."
        " TRUNCATE ignores row-level security: one tenant's context empties the table for all.",
        "REVOKE it; `db upgrade` grants exactly what rls_policies/ names.",
    ),
    "drift": Check(
        "project objects match rls_policies/",
        "The policies, functions (body, security, settings, owner), triggers, rules and grants that db upgrade"
        " creates are unchanged and present, compared with a replay of rls_policies/ in a transaction that is"
        " always rolled back. Objects the files do not create are the unexpected_* checks'.",
        "`db upgrade` re-applies rls_policies/; find out who changed it.",
    ),
}

# Tables no tenant data lives in, exempt from the tenant-table checks, each with its reason.
NON_TENANT_TABLES = {
    "public.migration": "Piccolo's record of applied migrations; the runtime role has no grant on it",
}
# Tables whose rows are never changed nor deleted but by the owner (db prune), each with its reason.
APPEND_ONLY_TABLES = {
    "public.access_log": "who read whose session: written by the read path, in the read's transaction (CONTRACT §7)",
}
APPEND_ONLY_COMMANDS = ("SELECT", "INSERT")
CHANGING_PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE")
# SECURITY DEFINER functions the runtime role may execute, each with its reason. None: the definer
# functions of rls_policies/ (chat_session_counters, chat_search_title, chat_search_message) are trigger functions.
KNOWN_DEFINER_FUNCTIONS: dict[str, str] = {}
PINNED_SEARCH_PATH = ["pg_catalog", "pg_temp"]
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
FORBIDDEN_PRIVILEGES = ("TRUNCATE", "TRIGGER", "REFERENCES")
# The schemas whose functions rls_policies/ creates.
FUNCTION_SCHEMAS = ["public", "rls"]

NOT_SYSTEM = "{n}.nspname <> 'information_schema' AND {n}.nspname !~ '^pg_'"
NOT_EXTENSION = """NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {catalog}::regclass AND e.objid = {oid}
                             AND e.deptype = 'e')"""
_FLOOR = re.compile(r'^\((?P<column>[a-z_][a-z0-9_$]*|"(?:[^"]|"")+") = \( SELECT rls\.tenant_id\(\) AS tenant_id\)\)$')
_QUALIFIED_CALL = re.compile(r'"?([A-Za-z_][\w$]*)"?\s*\.\s*"?([A-Za-z_][\w$]*)"?\s*\(')

# Relations outside the system schemas, and which of the names $1 (roles, 'public') reach them.
RELATIONS = f"""
SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS relkind,
       c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                              AND a.attnum > 0 AND NOT a.attisdropped) AS has_tenant_id,
       coalesce(c.reloptions && '{{security_invoker=true,security_invoker=on,security_invoker=1}}', false) AS invoker,
       array(SELECT r.name FROM unnest($1::text[]) AS r(name)
             WHERE has_schema_privilege(r.name, n.oid, 'USAGE')
               AND (has_table_privilege(r.name, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                    OR has_any_column_privilege(r.name, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))) AS reached_by
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {NOT_SYSTEM.format(n="n")}
ORDER BY 2
"""

POLICIES = """
SELECT format('%I.%I', schemaname, tablename) AS table_name, policyname, permissive, roles::text[] AS roles,
       cmd, qual, with_check
FROM pg_policies
WHERE schemaname <> 'information_schema' AND schemaname !~ '^pg_'
ORDER BY 1, 2
"""

# The runtime group $2 and the roles that can become it or the runtime role $1: they hold the runtime's grants.
MEMBERS = """
WITH RECURSIVE members(oid) AS (
    SELECT oid FROM pg_roles WHERE rolname IN ($1, $2)
    UNION
    SELECT m.member FROM pg_auth_members m JOIN members ON m.roleid = members.oid
)
SELECT r.rolname::text AS rolname, r.rolsuper, r.rolbypassrls FROM members JOIN pg_roles r USING (oid)
WHERE r.rolname <> $1
ORDER BY 1
"""

# Views reaching one of the tables $1 directly or through other views.
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
SELECT DISTINCT format('%I.%I', n.nspname, v.relname) AS name
FROM reach
JOIN pg_class v ON v.oid = reach.view_oid
JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE reach.table_oid = ANY($1::oid[]) AND v.relkind IN ('v', 'm') AND {NOT_SYSTEM.format(n="n")}
"""

# Functions outside the system schemas and extensions, and which of the names $1 may execute them.
FUNCTIONS = f"""
SELECT p.oid, p.oid::regprocedure::text AS name, n.nspname::text AS schema, p.proname::text AS proname,
       p.prosecdef, coalesce(p.proconfig, '{{}}') AS config, p.prosrc AS body,
       p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype) AS is_trigger,
       array(SELECT r.name FROM unnest($1::text[]) AS r(name)
             WHERE has_schema_privilege(r.name, n.oid, 'USAGE')
               AND has_function_privilege(r.name, p.oid, 'EXECUTE')) AS executable_by
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {NOT_SYSTEM.format(n="n")} AND {NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
ORDER BY 2
"""

# What runs a function: policies (directly, or through an operator) and triggers.
CALLERS = f"""
SELECT format('policy %I.%I.%I', n.nspname, c.relname, pol.polname) AS caller,
       coalesce(o.oprcode::oid, d.refobjid) AS function
FROM pg_policy pol
JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
                 AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
UNION ALL
SELECT format('trigger %I.%I.%I', n.nspname, c.relname, t.tgname), t.tgfoid
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND {NOT_SYSTEM.format(n="n")}
"""

# Functions that call others in a body PostgreSQL parsed (SQL-standard BEGIN ATOMIC): caller, callee.
CALLS = """
SELECT d.objid AS caller, d.refobjid AS callee
FROM pg_depend d
WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_proc'::regclass AND d.deptype = 'n'
"""

# Every search_path in use, with where it is set.
SEARCH_PATHS = """
SELECT format('the setting of %s in %s', coalesce(r.rolname::text, 'every role'),
              coalesce(d.datname::text, 'every database')) AS source, substr(cfg, 13) AS path
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase,
     unnest(s.setconfig) AS cfg
WHERE cfg LIKE 'search_path=%' AND (d.datname IS NULL OR d.datname = current_database())
UNION ALL
SELECT format('function %s', p.oid::regprocedure), substr(cfg, 13)
FROM pg_proc p, unnest(p.proconfig) AS cfg
WHERE cfg LIKE 'search_path=%'
UNION ALL
SELECT 'the server default', boot_val FROM pg_settings WHERE name = 'search_path'
"""

# Functions, operators and (non-array) types in the schemas $1 named like a pg_catalog one.
SHADOWS = f"""
SELECT 'function' AS kind, n.nspname::text AS schema, p.oid::regprocedure::text AS name, p.proname::text AS shadowed
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1::text[]) AND {NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
  AND EXISTS (SELECT 1 FROM pg_proc c WHERE c.pronamespace = 'pg_catalog'::regnamespace AND c.proname = p.proname)
UNION ALL
SELECT 'operator', n.nspname, o.oid::regoperator::text, o.oprname::text
FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
WHERE n.nspname = ANY($1::text[]) AND {NOT_EXTENSION.format(catalog="'pg_operator'", oid="o.oid")}
  AND EXISTS (SELECT 1 FROM pg_operator c WHERE c.oprnamespace = 'pg_catalog'::regnamespace
                                           AND c.oprname = o.oprname)
UNION ALL
SELECT 'type', n.nspname, t.oid::regtype::text, t.typname::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY($1::text[]) AND t.typcategory <> 'A'
  AND {NOT_EXTENSION.format(catalog="'pg_type'", oid="t.oid")}
  AND EXISTS (SELECT 1 FROM pg_type c WHERE c.typnamespace = 'pg_catalog'::regnamespace AND c.typname = t.typname)
ORDER BY 1, 3
"""

# TEMPORARY and CREATE on the database, CREATE on each schema, held by the names $1.
PRIVILEGES = f"""
SELECT format('database %I', current_database()) AS object, p.privilege,
       array(SELECT r.name FROM unnest($1::text[]) AS r(name)
             WHERE has_database_privilege(r.name, current_database(), p.privilege)) AS holders
FROM unnest(ARRAY['TEMPORARY', 'CREATE']) AS p(privilege)
UNION ALL
SELECT format('schema %I', n.nspname), 'CREATE',
       array(SELECT r.name FROM unnest($1::text[]) AS r(name) WHERE has_schema_privilege(r.name, n.oid, 'CREATE'))
FROM pg_namespace n WHERE {NOT_SYSTEM.format(n="n")}
ORDER BY 1, 2
"""

# What the roles $1 own: relations, functions, schemas, the database.
OWNED = f"""
SELECT kind || ' ' || name AS object, pg_get_userbyid(owner)::text AS owner, kind FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
           format('%I.%I', n.nspname, c.relname) AS name, c.relowner AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {NOT_SYSTEM.format(n="n")}
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text, p.proowner
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {NOT_SYSTEM.format(n="n")}
    UNION ALL
    SELECT 'schema', quote_ident(n.nspname), n.nspowner FROM pg_namespace n WHERE {NOT_SYSTEM.format(n="n")}
    UNION ALL
    SELECT 'database', quote_ident(datname), datdba FROM pg_database WHERE datname = current_database()
) AS objects
WHERE owner = ANY($1::oid[])
ORDER BY 1
"""

# --- the snapshot: the kinds of object the replay recreates ($1: the tenant tables) -------------

SNAPSHOT_FUNCTIONS = f"""
SELECT p.oid::regprocedure::text AS name, pg_get_userbyid(p.proowner)::text AS owner,
       CASE WHEN p.prosecdef THEN 'DEFINER' ELSE 'INVOKER' END AS security,
       coalesce(array_to_string(p.proconfig, '; '), '') AS config,
       CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
       p.prosrc AS body,
       pg_get_functiondef(p.oid) AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1::text[]) AND p.prokind IN ('f', 'p')
  AND {NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
"""

SNAPSHOT_TRIGGERS = """
SELECT format('%s.%I', t.tgrelid::regclass, t.tgname) AS name, pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled::text AS enabled
FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid = ANY($1::oid[])
"""

SNAPSHOT_RULES = """
SELECT format('%s.%I', r.ev_class::regclass, r.rulename) AS name, pg_get_ruledef(r.oid) AS definition,
       r.ev_enabled::text AS enabled
FROM pg_rewrite r WHERE r.rulename <> '_RETURN' AND r.ev_class = ANY($1::oid[])
"""

# Grants (not the owner's own) on the tenant tables and their columns, the functions of the
# function schemas $2, and schema rls: object, grantee ('PUBLIC' for 0), privilege.
GRANTS = f"""
SELECT object, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type AS privilege, a.is_grantable AS grantable, on_table
FROM (
    SELECT c.oid::regclass::text AS object, c.relacl AS acl, c.relowner AS owner, true AS on_table
    FROM pg_class c WHERE c.oid = ANY($1::oid[])
    UNION ALL
    SELECT format('%s(%I)', c.oid::regclass, att.attname), att.attacl, c.relowner, true
    FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid
    WHERE c.oid = ANY($1::oid[]) AND att.attacl IS NOT NULL AND NOT att.attisdropped
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text, p.proacl, p.proowner, false
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY($2::text[]) AND {NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
    UNION ALL
    SELECT 'schema ' || quote_ident(n.nspname), n.nspacl, n.nspowner, false FROM pg_namespace n WHERE n.nspname = 'rls'
) AS objects, aclexplode(objects.acl) AS a
WHERE a.grantee <> objects.owner
"""

# --- the replay's clean slate: what the files create, dropped in the rolled-back transaction ------

DROP_ROUTINES = f"""
SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS sql
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
  AND pg_has_role(current_user, p.proowner, 'USAGE') AND {NOT_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
"""

DROP_POLICIES = """
SELECT format('DROP POLICY %I ON %I.%I', policyname, schemaname, tablename) AS sql
FROM pg_policies WHERE schemaname <> 'information_schema' AND schemaname !~ '^pg_'
"""

DROP_TABLE_OBJECTS = """
SELECT format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass) AS sql
FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid = ANY($1::oid[])
UNION ALL
SELECT format('DROP RULE %I ON %s', r.rulename, r.ev_class::regclass)
FROM pg_rewrite r WHERE r.rulename <> '_RETURN' AND r.ev_class = ANY($1::oid[])
UNION ALL
SELECT format('REVOKE ALL ON %s FROM %s CASCADE', c.oid::regclass,
              string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                       ELSE quote_ident(pg_get_userbyid(a.grantee)) END, ', '))
FROM pg_class c,
     LATERAL (SELECT c.relacl
              UNION ALL
              SELECT att.attacl FROM pg_attribute att
              WHERE att.attrelid = c.oid AND att.attacl IS NOT NULL) AS acls(acl),
     aclexplode(acls.acl) AS a
WHERE c.oid = ANY($1::oid[]) AND a.grantee <> c.relowner
GROUP BY c.oid
"""


# Which of the roles $1 no policy role of $2 applies to (a policy applies to the members of its roles).
UNBOUND = """
SELECT array(SELECT r FROM unnest($1::text[]) AS r
             WHERE NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS f
                               WHERE CASE WHEN f = 'public' THEN true ELSE pg_has_role(r, f, 'USAGE') END))
"""


class AuditConnectionError(Exception):
    """The database could not be reached (the CLI exits 2)."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong: which check, on which object, and what."""

    name: str
    object: str
    detail: str
    level: str = ERROR

    @property
    def cache_key(self) -> str:
        """``<name>:<object>``, whitespace as ``_``: stable across runs, for ``--exclude``."""
        return f"{self.name}:{'_'.join(self.object.split())}"

    def as_json(self) -> dict[str, str]:
        """The finding as one JSON object, after Supabase's splinter lints."""
        check = CHECKS[self.name]
        return {
            "name": self.name,
            "title": check.title,
            "level": self.level,
            "object": self.object,
            "description": check.description,
            "detail": self.detail,
            "remediation": check.remediation,
            "cache_key": self.cache_key,
        }


@dataclass
class Report:
    """The outcome of one audit."""

    database: str
    migrator: str = ""
    runtime_role: str = ""
    runtime_roles: list[str] = field(default_factory=list)
    tenant_tables: list[str] = field(default_factory=list)
    policies: int = 0
    findings: list[Finding] = field(default_factory=list)
    excluded: list[Finding] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings of level ERROR."""
        return [f for f in self.findings if f.level == ERROR]

    @property
    def clean(self) -> bool:
        """True when no ERROR was found (warnings allowed)."""
        return not self.errors

    def add(self, name: str, obj: str, detail: str, level: str | None = None) -> None:
        """Record a finding (at its check's level unless ``level`` says otherwise)."""
        self.findings.append(Finding(name, obj, detail, level or CHECKS[name].level))

    def exclude(self, keys: Iterable[str]) -> None:
        """Move the findings whose ``cache_key`` is one of ``keys`` to ``excluded``; remember unmatched keys."""
        wanted = set(keys)
        self.excluded = [f for f in self.findings if f.cache_key in wanted]
        self.findings = [f for f in self.findings if f.cache_key not in wanted]
        self.unmatched = sorted(wanted - {f.cache_key for f in self.excluded})


@dataclass
class Catalog:
    """What the checks read, fetched once."""

    runtime_role: str
    migrator: asyncpg.Record
    reach: list[asyncpg.Record]
    members: list[asyncpg.Record]
    relations: list[asyncpg.Record]
    tenant: list[asyncpg.Record]
    policies: list[asyncpg.Record]
    functions: list[asyncpg.Record]
    callers: list[asyncpg.Record]
    calls: list[asyncpg.Record]
    search_paths: list[tuple[str, str]]
    privileges: list[asyncpg.Record]
    grants: list[asyncpg.Record]

    @property
    def tenant_oids(self) -> list[int]:
        """The oids of the tenant tables."""
        return [t["oid"] for t in self.tenant]


def describe(dsn: str) -> str:
    """``role@host:port/database`` of a DSN (never its password)."""
    parts = urlsplit(dsn)
    return f"{parts.username or ''}@{parts.hostname or ''}:{parts.port or 5432}{parts.path or ''}"


def _who(names: Sequence[str]) -> str:
    """``PUBLIC`` when PUBLIC is among ``names`` (then everyone is), else the role names."""
    return "PUBLIC" if "public" in names else ", ".join(names)


def _search_path(config: Sequence[str]) -> list[str] | None:
    """The schemas of a function's ``SET search_path``, or None without one."""
    for setting in config:
        if setting.startswith("search_path="):
            return [s.strip().strip('"') for s in setting.removeprefix("search_path=").split(",") if s.strip()]
    return None


async def load_catalog(connection: asyncpg.Connection, runtime_role: str, default_path: str) -> Catalog:
    """Read everything the checks need (``default_path``: the owner's search_path at connection)."""
    reach = await connection.fetch(REACH_SQL, runtime_role)
    # A superuser holds every privilege: reported once (runtime_role), not again for each object.
    names = [r["rolname"] for r in reach if not r["rolsuper"]] + ["public"]
    relations = await connection.fetch(RELATIONS, names)
    project = {f"public.{name}" for name in policy_tables()}
    tenant = [
        r
        for r in relations
        if r["relkind"] in ("r", "p", "f")
        and r["name"] not in NON_TENANT_TABLES
        and (r["has_tenant_id"] or r["reached_by"] or r["name"] in project)
    ]
    paths = [("the migrator's sessions", default_path)]
    paths += [(row["source"], row["path"]) for row in await connection.fetch(SEARCH_PATHS)]
    return Catalog(
        runtime_role=runtime_role,
        migrator=await connection.fetchrow(
            "SELECT rolname::text AS rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ),
        reach=list(reach),
        members=list(await connection.fetch(MEMBERS, runtime_role, GROUP_ROLE)),
        relations=list(relations),
        tenant=tenant,
        policies=list(await connection.fetch(POLICIES)),
        functions=list(await connection.fetch(FUNCTIONS, names)),
        callers=list(await connection.fetch(CALLERS)),
        calls=list(await connection.fetch(CALLS)),
        search_paths=paths,
        privileges=list(await connection.fetch(PRIVILEGES, names)),
        grants=list(await connection.fetch(GRANTS, [t["oid"] for t in tenant], FUNCTION_SCHEMAS)),
    )


# --- tables and policies ----------------------------------------------------------------------


def check_tables(report: Report, catalog: Catalog) -> None:
    """``rls_enabled`` and ``rls_forced``."""
    for table in catalog.tenant:
        reached = f" (the runtime role reaches it through {_who(table['reached_by'])})" if table["reached_by"] else ""
        if not table["relrowsecurity"]:
            report.add("rls_enabled", table["name"], "row-level security is disabled" + reached)
        if not table["relforcerowsecurity"]:
            report.add("rls_forced", table["name"], "row-level security is not FORCED: the owner bypasses it")


def _clause_needed(cmd: str) -> str:
    """The clause a permissive policy needs for ``cmd`` to grant anything."""
    return "with_check" if cmd == "INSERT" else "qual"


def check_coverage(report: Report, tables: Iterable[str], policies: Sequence[asyncpg.Record]) -> None:
    """``policy_coverage`` and the missing-clause half of ``policy_always_true``."""
    covered: dict[str, set[str]] = {name: set() for name in tables}
    for policy in policies:
        if policy["table_name"] not in covered or policy["permissive"] != "PERMISSIVE":
            continue
        if policy[_clause_needed(policy["cmd"])] is None:
            clause = "WITH CHECK" if policy["cmd"] == "INSERT" else "USING"
            name = f"{policy['table_name']}.{policy['policyname']}"
            report.add("policy_always_true", name, f"permissive {policy['cmd']} policy without {clause}")
            continue
        covered[policy["table_name"]].update(COMMANDS if policy["cmd"] == "ALL" else (policy["cmd"],))
    for table, commands in covered.items():
        needed = APPEND_ONLY_COMMANDS if table in APPEND_ONLY_TABLES else COMMANDS
        absent = [cmd for cmd in needed if cmd not in commands]
        if absent:
            report.add("policy_coverage", table, "no permissive policy for " + ", ".join(absent))


async def check_floors(connection: asyncpg.Connection, report: Report, catalog: Catalog) -> None:
    """``tenant_floor`` and ``policy_to_public``."""
    for policy in catalog.policies:
        if "public" in policy["roles"]:
            name = f"{policy['table_name']}.{policy['policyname']}"
            report.add("policy_to_public", name, f"{policy['cmd']} policy applies TO PUBLIC (every role)")
    for table in catalog.tenant:
        floors = []
        for policy in catalog.policies:
            match = _FLOOR.match(policy["qual"] or "")
            if (
                policy["table_name"] == table["name"]
                and policy["permissive"] == "RESTRICTIVE"
                and policy["cmd"] == "ALL"
                and match
                and policy["with_check"] == policy["qual"]
                and (match["column"] == "tenant_id" or not table["has_tenant_id"])
            ):
                floors.append(policy)
        if not floors:
            column = "tenant_id" if table["has_tenant_id"] else "<tenant column>"
            detail = f"no RESTRICTIVE policy FOR ALL with USING and WITH CHECK {column} = (SELECT rls.tenant_id())"
            report.add("tenant_floor", table["name"], detail)
            continue
        roles = sorted({r for floor in floors for r in floor["roles"]})
        unbound = await connection.fetchval(UNBOUND, [r for r in table["reached_by"] if r != "public"], roles)
        if unbound:
            detail = f"the floor applies to {', '.join(roles)}, not to {', '.join(unbound)}, which reach the table"
            report.add("tenant_floor", table["name"], detail)


async def _passes_foreign_row(connection: asyncpg.Connection, policy: asyncpg.Record) -> str | None:
    """How a policy's clauses let a row of another tenant through, or None when they never do."""
    table = policy["table_name"]
    row = f"json_populate_record(NULL::{table}, json_build_object('tenant_id', $1::text))"
    for clause in ("qual", "with_check"):
        if policy[clause] is None:
            continue
        sql = f"SELECT EXISTS (SELECT 1 FROM {row} AS {table.split('.', 1)[1]} WHERE {policy[clause]})"
        for context in ("another tenant", "no context"):
            try:
                async with connection.transaction(readonly=True):
                    if context == "another tenant":
                        await set_context(connection, uuid.uuid4(), uuid.uuid4())
                    passes = await connection.fetchval(sql, str(uuid.uuid4()))
            except asyncpg.PostgresError as error:
                return f"cannot evaluate {clause}: {error}"
            if passes:
                what = "USING" if clause == "qual" else "WITH CHECK"
                return f"{what} passes a foreign row with {context}: {policy[clause]}"
    return None


async def check_always_true(
    connection: asyncpg.Connection, report: Report, tables: Iterable[str], policies: Sequence[asyncpg.Record]
) -> None:
    """``policy_always_true``: each clause, on a row of tenant Y, must not pass for tenant X nor without context.

    Policies without the clause their command needs were reported by ``check_coverage``.
    """
    tenant_tables = set(tables)
    for policy in policies:
        if (
            policy["table_name"] in tenant_tables
            and policy["permissive"] == "PERMISSIVE"
            and policy[_clause_needed(policy["cmd"])] is not None
        ):
            detail = await _passes_foreign_row(connection, policy)
            if detail:
                report.add("policy_always_true", f"{policy['table_name']}.{policy['policyname']}", detail)


# --- roles, privileges, ownership -------------------------------------------------------------


def _bypasses(role: asyncpg.Record, *, createrole: bool = False) -> str:
    """Why RLS does not bind ``role`` (and, with ``createrole``, how it could get there), or ''."""
    bypass = [what for flag, what in (("rolsuper", "is a superuser"), ("rolbypassrls", "has BYPASSRLS")) if role[flag]]
    text = " and ".join(bypass) + (": row-level security does not apply to it" if bypass else "")
    if createrole and role["rolcreaterole"]:
        text += ("; it " if text else "") + "has CREATEROLE: it can grant itself membership in other roles"
    return text


def check_roles(report: Report, catalog: Catalog) -> None:
    """``runtime_role`` (both directions of membership) and ``migrator``."""
    login = catalog.runtime_role
    if not catalog.reach:
        report.add("runtime_role", login, "the runtime role does not exist (run `db upgrade`)")
    for role in catalog.reach:
        problems = _bypasses(role, createrole=True)
        if problems:
            who = "the runtime role"
            if role["rolname"] != login:
                who = f"{login} can become it ({' → '.join(role['path'])}, SET ROLE) and it"
            report.add("runtime_role", role["rolname"], f"{who} {problems}")
    reached = {r["rolname"] for r in catalog.reach}
    for member in catalog.members:
        problems = _bypasses(member)
        if problems and member["rolname"] not in reached:  # a role within reach was reported above
            who = f"a member of {GROUP_ROLE} or {login} (it holds the runtime grants) that"
            if member["rolname"] == GROUP_ROLE:
                who = "the runtime group"
            report.add("runtime_role", member["rolname"], f"{who} {problems}")
    problems = _bypasses(catalog.migrator)
    if problems:
        detail = f"the migrator {problems}, even FORCED, nor to the definer functions, rules and views it owns"
        report.add("migrator", catalog.migrator["rolname"], detail)


def check_privileges(report: Report, catalog: Catalog) -> None:
    """``runtime_privileges``: TEMPORARY and CREATE anywhere."""
    for row in catalog.privileges:
        if row["holders"]:
            what = {"TEMPORARY": "create temporary tables", "CREATE": "create objects"}[row["privilege"]]
            detail = f"{row['privilege']} held by {_who(row['holders'])}: the runtime role can {what} there"
            report.add("runtime_privileges", f"{row['object']}: {row['privilege']}", detail)


async def check_ownership(connection: asyncpg.Connection, report: Report, catalog: Catalog) -> None:
    """``ownership``: nothing owned by a role the runtime role can become."""
    consequences = {
        "table": "it can disable its row-level security or drop its policies",
        "function": "it can ALTER the function (SET a setting, SECURITY DEFINER) or drop it",
        "schema": "it can create, rename and drop objects in it",
        "database": "it owns schema public (pg_database_owner) and can ALTER DATABASE",
    }
    for row in await connection.fetch(OWNED, [r["oid"] for r in catalog.reach if not r["rolsuper"]]):
        detail = f"owned by {row['owner']}, which the runtime role is or can become: "
        report.add("ownership", row["object"], detail + consequences.get(row["kind"], "it can ALTER or drop it"))


# --- views and functions ----------------------------------------------------------------------


async def check_views(connection: asyncpg.Connection, report: Report, catalog: Catalog) -> None:
    """``view_security_invoker``: views over tenant tables, and the views the runtime role reaches."""
    over_tenant = {row["name"] for row in await connection.fetch(VIEWS, catalog.tenant_oids)}
    for view in catalog.relations:
        reached = view["reached_by"]
        if view["relkind"] not in ("v", "m") or not (reached or view["name"] in over_tenant):
            continue
        why = "over a tenant table" if view["name"] in over_tenant else f"readable by {_who(reached)}"
        if view["relkind"] == "m":
            report.add("view_security_invoker", view["name"], f"materialized view {why} stores rows outside RLS")
        elif not view["invoker"]:
            report.add("view_security_invoker", view["name"], f"view {why} runs as its owner (no security_invoker)")


def _callees(function: asyncpg.Record, by_name: dict[tuple[str, str], list[int]]) -> list[int]:
    """The non-system functions a body names with their schema."""
    called = {(schema.lower(), name.lower()) for schema, name in _QUALIFIED_CALL.findall(function["body"] or "")}
    return [oid for key in sorted(called) for oid in by_name.get(key, [])]


def check_functions(report: Report, catalog: Catalog) -> None:
    """``function_search_path`` and ``definer_executable``."""
    functions = {f["oid"]: f for f in catalog.functions}
    by_name: dict[tuple[str, str], list[int]] = {}
    for f in catalog.functions:
        by_name.setdefault((f["schema"].lower(), f["proname"].lower()), []).append(f["oid"])
    calls: dict[int, list[int]] = {}
    for row in catalog.calls:
        calls.setdefault(row["caller"], []).append(row["callee"])
    # Why each function must pin its search_path: the first reason found.
    why = {f["oid"]: "SECURITY DEFINER" for f in catalog.functions if f["prosecdef"]}
    for row in sorted(catalog.callers, key=lambda r: r["caller"]):
        if row["function"] in functions:
            why.setdefault(row["function"], f"run by {row['caller']}")
    queue = list(why)
    while queue:
        caller = functions[queue.pop()]
        for oid in _callees(caller, by_name) + calls.get(caller["oid"], []):
            if oid in functions and oid not in why:
                why[oid] = f"called by {caller['name']}"
                queue.append(oid)
    for oid, reason in sorted(why.items(), key=lambda item: functions[item[0]]["name"]):
        function = functions[oid]
        path = _search_path(function["config"])
        if path != PINNED_SEARCH_PATH:
            has = "none" if path is None else ", ".join(path) or "empty"
            detail = f"{reason}, without search_path = pg_catalog, pg_temp (has: {has})"
            report.add("function_search_path", function["name"], detail)
    for function in catalog.functions:
        if (
            function["prosecdef"]
            and not function["is_trigger"]
            and function["executable_by"]
            and function["name"] not in KNOWN_DEFINER_FUNCTIONS
        ):
            detail = (
                f"SECURITY DEFINER, executable by {_who(function['executable_by'])}: it runs with its owner's rights"
            )
            report.add("definer_executable", function["name"], detail)


async def check_shadowing(connection: asyncpg.Connection, report: Report, catalog: Catalog) -> None:
    """``catalog_shadowing``: pg_catalog names in the schemas of every search_path in use."""
    on_path: dict[str, str] = {}
    role_schemas = {
        row["nspname"]
        for row in await connection.fetch(
            "SELECT nspname::text FROM pg_namespace WHERE nspname IN (SELECT rolname FROM pg_roles)"
        )
    }
    for source, path in catalog.search_paths:
        for schema in (s.strip().strip('"') for s in path.split(",")):
            for name in sorted(role_schemas) if schema == "$user" else [schema]:
                on_path.setdefault(name, source)
    schemas = [s for s in on_path if s not in ("pg_catalog", "pg_temp", "")]
    for row in await connection.fetch(SHADOWS, schemas):
        detail = (
            f"{row['kind']} named like pg_catalog's {row['shadowed']}, in schema {row['schema']} on the search_path"
            f" of {on_path[row['schema']]}: it can win resolution over pg_catalog's"
        )
        report.add("catalog_shadowing", row["name"], detail)


def check_forbidden_grants(report: Report, catalog: Catalog) -> set[str]:
    """The half of ``unexpected_grant`` that needs no replay; returns the keys it reported."""
    reported = set()
    for grant in catalog.grants:
        if grant["on_table"] and (grant["privilege"] in FORBIDDEN_PRIVILEGES or grant["grantee"] == "PUBLIC"):
            key = _grant_key(grant)
            reported.add(key)
            why = "TRUNCATE ignores row-level security" if grant["privilege"] == "TRUNCATE" else "never granted"
            report.add("unexpected_grant", key, f"{why}; rls_policies/ grants no such privilege")
    return reported


# Triggers and rules on the tables $1, and any trigger function or rule anywhere: what they run.
WRITERS = """
SELECT 'trigger ' || format('%s.%I', t.tgrelid::regclass, t.tgname) AS object, t.tgrelid::regclass::text AS on_table,
       p.prosrc AS body
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'rule ' || format('%s.%I', r.ev_class::regclass, r.rulename), r.ev_class::regclass::text, pg_get_ruledef(r.oid)
FROM pg_rewrite r WHERE r.rulename <> '_RETURN'
"""


def _changes_table(table: str) -> re.Pattern[str]:
    """An UPDATE, DELETE FROM or TRUNCATE of ``table`` (schema-qualified or not, quoted or not) in SQL text."""
    schema, name = table.split(".")
    return re.compile(
        rf'\b(?:UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?(?:"?{schema}"?\s*\.\s*)?"?{name}"?\b',
        re.IGNORECASE,
    )


async def check_append_only(connection: asyncpg.Connection, report: Report, catalog: Catalog) -> None:
    """``append_only``: nothing but the owner changes or deletes a row of ``APPEND_ONLY_TABLES``."""
    runtime = {catalog.runtime_role, GROUP_ROLE, "public"} | {r["rolname"] for r in catalog.reach}
    for grant in catalog.grants:
        if grant["object"].split("(")[0] in APPEND_ONLY_TABLES and grant["privilege"] in CHANGING_PRIVILEGES:
            report.add("append_only", _grant_key(grant), "entries could be changed or deleted")
    for policy in catalog.policies:
        if (
            policy["table_name"] in APPEND_ONLY_TABLES
            and policy["permissive"] == "PERMISSIVE"
            and policy["cmd"] in ("UPDATE", "DELETE", "ALL")
            and runtime & set(policy["roles"])
        ):
            name = f"{policy['table_name']}.{policy['policyname']}"
            report.add("append_only", name, f"a permissive {policy['cmd']} policy for {_who(policy['roles'])}")
    writers = await connection.fetch(WRITERS)
    for table in APPEND_ONLY_TABLES:
        changes = _changes_table(table)
        for row in writers:
            if row["on_table"] in (table, table.removeprefix("public.")):
                report.add("append_only", row["object"], f"a {row['object'].split()[0]} on {table}")
            elif changes.search(row["body"]):
                report.add("append_only", row["object"], f"changes or deletes rows of {table}")


# --- drift and additions: the replay ------------------------------------------------------------

Snapshot = dict[str, dict[str, Any]]
READ_ONLY = "read-only"  # what ``replay`` answers on a hot standby (or with default_transaction_read_only)


def _grant_key(grant: asyncpg.Record) -> str:
    return f"{grant['privilege']} on {grant['object']} to {grant['grantee']}"


async def snapshot(connection: asyncpg.Connection, tenant_oids: list[int]) -> Snapshot:
    """The objects the replay recreates, by ``<kind> <name>``."""
    state: Snapshot = {}
    for row in await connection.fetch(POLICIES):
        state[f"policy {row['table_name']}.{row['policyname']}"] = {
            "permissive": row["permissive"],
            "roles": sorted(row["roles"]),
            "cmd": row["cmd"],
            "qual": row["qual"],
            "with_check": row["with_check"],
        }
    for row in await connection.fetch(SNAPSHOT_FUNCTIONS.replace("$2", "$1"), FUNCTION_SCHEMAS):
        state[f"function {row['name']}"] = {
            k: row[k] for k in ("owner", "security", "config", "volatility", "body", "definition")
        }
    for kind, sql in (("trigger", SNAPSHOT_TRIGGERS), ("rule", SNAPSHOT_RULES)):
        for row in await connection.fetch(sql, tenant_oids):
            state[f"{kind} {row['name']}"] = {"definition": row["definition"], "enabled": row["enabled"]}
    for row in await connection.fetch(GRANTS, tenant_oids, FUNCTION_SCHEMAS):
        state[f"grant {_grant_key(row)}"] = {"grantable": row["grantable"], "object": row["object"]}
    return state


async def _run_generated(connection: asyncpg.Connection, query: str, *args: object) -> None:
    """Run each statement (column ``sql``) that ``query`` returns."""
    for statement in await connection.fetch(query, *args):
        await connection.execute(statement["sql"])


async def replay(connection: asyncpg.Connection, tenant_oids: list[int], lock_timeout: str) -> Snapshot | str:
    """What ``db upgrade``'s policy step creates, from a clean slate, in a transaction always rolled back.

    Returns the snapshot, or why it could not be taken.
    """
    transaction = connection.transaction()
    await transaction.start()
    try:
        if await connection.fetchval("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool"):
            return READ_ONLY
        await connection.execute("SELECT set_config('lock_timeout', $1, true)", lock_timeout)
        await _run_generated(connection, DROP_ROUTINES)
        await connection.execute("DROP SCHEMA IF EXISTS rls CASCADE")
        await _run_generated(connection, DROP_POLICIES)
        await _run_generated(connection, DROP_TABLE_OBJECTS, tenant_oids)
        await apply_policies(connection)
        return await snapshot(connection, tenant_oids)
    except asyncpg.PostgresError as error:
        return f"could not compare (nothing was changed): {error}"
    finally:
        await transaction.rollback()


def _changes(live: dict[str, Any], expected: dict[str, Any]) -> str:
    """What differs between two snapshots of one object, shortly."""
    changed = [k for k in expected if live[k] != expected[k]]
    if "definition" in changed and len(changed) > 1:
        changed.remove("definition")  # explained by the fields that differ
    parts = []
    for key in changed:
        if key in ("body", "definition"):
            parts.append(f"{key} differs")
        else:
            parts.append(f"{key}: live {live[key]!r}, files {expected[key]!r}")
    return "changed by hand: " + "; ".join(parts)


def _policy_text(policy: dict[str, Any]) -> str:
    """A policy of the snapshot, as its clauses read."""
    text = f"{policy['permissive']} {policy['cmd']} TO {', '.join(policy['roles'])}"
    for clause, sql in (("USING", policy["qual"]), ("WITH CHECK", policy["with_check"])):
        if sql:
            text += f" {clause} {sql if sql.startswith('(') else f'({sql})'}"
    return text


def check_replay(report: Report, live: Snapshot, expected: Snapshot, reported_grants: set[str]) -> None:
    """``drift`` (changed or missing) and the additions ``unexpected_policy/trigger/rule/grant``."""
    for key in sorted(expected):
        if key not in live:
            report.add("drift", key, "created by rls_policies/ but missing from the database (dropped by hand)")
        elif live[key] != expected[key]:
            report.add("drift", key, _changes(live[key], expected[key]))
    project_functions = {key for key in expected if key.startswith("function ")}
    for key in sorted(live.keys() - expected.keys()):
        kind, name = key.split(" ", 1)
        if kind == "grant":
            on = live[key]["object"]
            if name in reported_grants or (on.startswith("function ") and on not in project_functions):
                continue
            report.add("unexpected_grant", name, "not granted by rls_policies/")
        elif kind != "function":
            definition = _policy_text(live[key]) if kind == "policy" else live[key]["definition"]
            report.add(f"unexpected_{kind}", name, f"not created by rls_policies/: {' '.join(definition.split())}")


async def check_drift(
    connection: asyncpg.Connection, report: Report, catalog: Catalog, lock_timeout: str, reported_grants: set[str]
) -> None:
    """``drift`` and the additions, from the live state and the replay."""
    live = await snapshot(connection, catalog.tenant_oids)
    expected = await replay(connection, catalog.tenant_oids, lock_timeout)
    if expected == READ_ONLY:
        detail = (
            "not compared: the server is read-only (a hot standby?), so the policy step cannot be replayed;"
            " additions are judged by the rules alone. Run the audit against the primary."
        )
        report.add("drift", "rls_policies/", detail, WARN)
    elif isinstance(expected, str):
        report.add("drift", "rls_policies/", expected)
    else:
        check_replay(report, live, expected, reported_grants)


# --- the audit ----------------------------------------------------------------------------------


async def run_audit(
    owner_dsn: str,
    runtime_role: str,
    *,
    lock_timeout: str = "2s",
    connect_timeout: float = 10.0,
    exclude: Iterable[str] = (),
) -> Report:
    """Audit the database of ``owner_dsn`` for the API role ``runtime_role``.

    Raises ``AuditConnectionError`` when it cannot connect.
    """
    try:
        connection = await asyncpg.connect(owner_dsn, timeout=connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise AuditConnectionError(f"cannot connect to {describe(owner_dsn)}: {error}") from error
    try:
        default_path = await connection.fetchval("SHOW search_path")
        await connection.execute("SET search_path = pg_catalog, pg_temp")
        catalog = await load_catalog(connection, runtime_role, default_path)
        report = Report(
            database=describe(owner_dsn),
            migrator=catalog.migrator["rolname"],
            runtime_role=runtime_role,
            runtime_roles=[r["rolname"] for r in catalog.reach],
            tenant_tables=[t["name"] for t in catalog.tenant],
            policies=len(catalog.policies),
        )
        with_tenant_id = [t["name"] for t in catalog.tenant if t["has_tenant_id"]]
        check_tables(report, catalog)
        await check_floors(connection, report, catalog)
        check_coverage(report, with_tenant_id, catalog.policies)
        await check_always_true(connection, report, with_tenant_id, catalog.policies)
        check_roles(report, catalog)
        check_privileges(report, catalog)
        await check_ownership(connection, report, catalog)
        await check_views(connection, report, catalog)
        check_functions(report, catalog)
        await check_shadowing(connection, report, catalog)
        await check_append_only(connection, report, catalog)
        reported_grants = check_forbidden_grants(report, catalog)
        await check_drift(connection, report, catalog, lock_timeout, reported_grants)
        report.exclude(exclude)
        return report
    finally:
        await connection.close()


def render_json(report: Report) -> str:
    """The report as JSON (``--json``): the context, each check's result, one object per finding."""
    body = {
        "database": report.database,
        "migrator": report.migrator,
        "runtime_role": report.runtime_role,
        "runtime_roles": report.runtime_roles,
        "tenant_tables": report.tenant_tables,
        "policies": report.policies,
        "clean": report.clean,
        "checks": [
            {
                "name": name,
                "title": check.title,
                "ok": not any(f.name == name for f in report.findings),
            }
            for name, check in CHECKS.items()
        ],
        "findings": [f.as_json() for f in report.findings],
        "excluded": [f.as_json() for f in report.excluded],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def render_table(report: Report) -> str:
    """The report for a DBA (the default): each check's result, then the findings by check."""
    lines = [
        f"RLS audit of {report.database} (migrator {report.migrator})",
        f"runtime role {report.runtime_role} can become: {', '.join(report.runtime_roles) or '(nothing)'}",
        f"tenant tables: {', '.join(report.tenant_tables) or '(none)'}; policies: {report.policies}",
        "",
        f"{'check':<22} {'result':<8} what it proves",
    ]
    for name, check in CHECKS.items():
        found = [f for f in report.findings if f.name == name]
        result = f"{'FAIL' if any(f.level == ERROR for f in found) else 'WARN'} {len(found)}" if found else "ok"
        lines.append(f"{name:<22} {result:<8} {check.title}")
    for name, check in CHECKS.items():
        found = [f for f in report.findings if f.name == name]
        if not found:
            continue
        lines += ["", f"{name}: {check.title}", f"  fix: {check.remediation}"]
        for finding in found:
            lines += [
                f"  {finding.level:<5} {finding.object}",
                f"        {finding.detail}",
                f"        key: {finding.cache_key}",
            ]
    if report.excluded:
        lines += ["", f"excluded by key ({len(report.excluded)}): " + ", ".join(f.cache_key for f in report.excluded)]
    if report.unmatched:
        lines += ["", "no finding has the key: " + ", ".join(report.unmatched)]
    warnings = len(report.findings) - len(report.errors)
    tail = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
    lines += ["", f"{len(report.errors)} error(s){tail}" if report.errors else f"clean: no errors{tail}"]
    return "\n".join(lines)
