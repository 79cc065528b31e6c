"""Start-up check: refuse to serve with a database role that RLS would not apply to.

The role is unsafe when it, or any role it can become (``SET ROLE``: every role it is a
member of, directly or through other roles), is a superuser or has BYPASSRLS, or when it
(or such a role) owns a tenant table: the owner of a table may switch its row-level
security off. ``rls audit`` reuses ``REACH_SQL`` for the same question about the runtime role.
"""

from __future__ import annotations

import asyncpg

# Every role that role $1 can become (itself first), with the shortest chain of memberships
# that leads there. PostgreSQL refuses circular memberships, so the recursion ends.
REACH_SQL = """
WITH RECURSIVE reach(oid, path) AS (
    SELECT oid, ARRAY[rolname::text] FROM pg_catalog.pg_roles WHERE rolname = $1
    UNION ALL
    SELECT m.roleid, reach.path || r.rolname::text
    FROM pg_catalog.pg_auth_members m
    JOIN reach ON m.member = reach.oid
    JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
)
SELECT * FROM (
    SELECT DISTINCT ON (r.oid)
           r.oid, r.rolname::text AS rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole, reach.path
    FROM reach JOIN pg_catalog.pg_roles r USING (oid)
    ORDER BY r.oid, cardinality(reach.path)
) AS shortest
ORDER BY cardinality(path), rolname
"""

# The tenant tables (a tenant_id column) that each of the roles $1 owns.
OWNED_SQL = """
SELECT c.relowner AS owner, array_agg(c.relname::text ORDER BY c.relname) AS tables
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND c.relowner = ANY($1::oid[])
GROUP BY c.relowner
"""


class UnsafeRoleError(RuntimeError):
    """The server's database role would bypass row-level security."""


def _problems(role: asyncpg.Record, owned: list[str]) -> list[str]:
    """What makes one reachable role unsafe, in words."""
    problems = []
    if role["rolsuper"]:
        problems.append("is a superuser")
    if role["rolbypassrls"]:
        problems.append("has BYPASSRLS")
    if owned:
        problems.append("owns tenant tables " + ", ".join(owned))
    return problems


async def check_runtime_role(connection: asyncpg.Connection) -> None:
    """Raise ``UnsafeRoleError`` if the connection's role, or a role it can become, would bypass RLS.

    That is: a superuser, a BYPASSRLS role, or the owner of a tenant table.
    """
    login = await connection.fetchval("SELECT current_user")
    roles = await connection.fetch(REACH_SQL, login)
    owned = {row["owner"]: row["tables"] for row in await connection.fetch(OWNED_SQL, [r["oid"] for r in roles])}
    reasons = []
    for role in roles:
        problems = _problems(role, owned.get(role["oid"], []))
        if not problems:
            continue
        if role["rolname"] == login:
            reasons.append(" and ".join(problems))
        else:
            chain = " → ".join(role["path"])
            reasons.append(f"can become {role['rolname']!r} ({chain}, by SET ROLE), which {' and '.join(problems)}")
    if reasons:
        raise UnsafeRoleError(
            f"refusing to start: database role {login!r} {'; '.join(reasons)}; "
            "row-level security would be bypassed. Use a plain role (see APP_DATABASE_URL)."
        )
