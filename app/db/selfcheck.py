"""Start-up check: refuse to serve with a database role that RLS would not apply to."""

from __future__ import annotations

import asyncpg

ROLE_QUERY = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       array(
           SELECT c.relname::text
           FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
           WHERE c.relkind IN ('r', 'p') AND pg_has_role(current_user, c.relowner, 'USAGE')
           ORDER BY 1
       ) AS owned_tenant_tables
FROM pg_roles r
WHERE r.rolname = current_user
"""


class UnsafeRoleError(RuntimeError):
    """The server's database role would bypass row-level security."""


async def check_runtime_role(connection: asyncpg.Connection) -> None:
    """Raise ``UnsafeRoleError`` if the connection's role is superuser, BYPASSRLS, or owns a tenant table."""
    row = await connection.fetchrow(ROLE_QUERY)
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        raise UnsafeRoleError("cannot read the server's own role")
    problems = []
    if row["rolsuper"]:
        problems.append("is a superuser")
    if row["rolbypassrls"]:
        problems.append("has BYPASSRLS")
    if row["owned_tenant_tables"]:
        problems.append("owns tenant tables " + ", ".join(row["owned_tenant_tables"]))
    if problems:
        raise UnsafeRoleError(
            f"refusing to start: database role {row['rolname']!r} {' and '.join(problems)}; "
            "row-level security would be bypassed. Use a plain role (see APP_DATABASE_URL)."
        )
