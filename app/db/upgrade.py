"""``db upgrade``: the runtime role, Piccolo migrations, and the policies of ``rls_policies/``."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import asyncpg

from app.db.engine import use_database
from app.db.scripts import apply_policies

GROUP_ROLE = "chat_runtime"


class RoleSetupError(RuntimeError):
    """The migrator may not create the runtime roles; the message holds the SQL a DBA must run."""


def runtime_login(runtime_dsn: str) -> tuple[str, str | None]:
    """The role name and password of a runtime DSN."""
    parts = urlsplit(runtime_dsn)
    return unquote(parts.username or ""), unquote(parts.password) if parts.password else None


def role_sql(login: str, password: str | None) -> str:
    """The SQL a DBA runs to create the runtime roles (shown when the migrator can't)."""
    secret = f" PASSWORD '{password}'" if password else ""
    return (
        f"CREATE ROLE {GROUP_ROLE} NOLOGIN;\n"
        f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE{secret};\n"
        f"GRANT {GROUP_ROLE} TO {login};"
    )


async def ensure_roles(connection: asyncpg.Connection, login: str, password: str | None) -> None:
    """Create the group role ``chat_runtime`` and the login ``login`` in it; set its password.

    Raises ``RoleSetupError`` with the SQL a DBA must run when the roles are missing and
    the migrator has neither SUPERUSER nor CREATEROLE.
    """
    can_create = await connection.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    exists = await connection.fetchval("SELECT count(*) = 2 FROM pg_roles WHERE rolname IN ($1, $2)", GROUP_ROLE, login)
    member = exists and await connection.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", login, GROUP_ROLE)
    if not can_create:
        if member:
            return
        raise RoleSetupError("the migrator may not create roles; ask a DBA to run:\n" + role_sql(login, password))
    await connection.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_runtime') THEN
                CREATE ROLE chat_runtime NOLOGIN;
            END IF;
        END $$
        """
    )
    statement = await connection.fetchval(
        "SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', $1::text, $2::text)"
        " || CASE WHEN $3::text IS NULL THEN '' ELSE format(' PASSWORD %L', $3::text) END"
        " || format('; GRANT chat_runtime TO %I', $2::text)",
        "ALTER" if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", login) else "CREATE",
        login,
        password,
    )
    await connection.execute(statement)


async def upgrade(owner_dsn: str, runtime_dsn: str) -> None:
    """Bring the database at ``owner_dsn`` to the current schema, roles and policies (idempotent)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    connection = await asyncpg.connect(owner_dsn)
    try:
        await ensure_roles(connection, *runtime_login(runtime_dsn))
    finally:
        await connection.close()
    engine = use_database(owner_dsn)
    result = await run_forwards(app_name="all")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")
    async with engine.transaction():
        await apply_policies()
