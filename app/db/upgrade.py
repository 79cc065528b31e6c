"""``db upgrade``: the roles, Piccolo's migrations, then the repeatable step of ``rls_policies/``."""

from __future__ import annotations

import contextlib
import io
from urllib.parse import unquote, urlsplit

import asyncpg

from app.db.engine import use_database
from app.db.policies import apply_policies

GROUP_ROLE = "chat_runtime"
MIGRATOR_ROLE = "chat_migrator"


class RoleSetupError(RuntimeError):
    """The migrator may not create the roles; the message holds the SQL a DBA must run."""


class MigrationError(RuntimeError):
    """A migration failed; the message holds what Piccolo printed."""


def runtime_login(runtime_dsn: str) -> tuple[str, str | None]:
    """The role name and password of a runtime DSN."""
    parts = urlsplit(runtime_dsn)
    return unquote(parts.username or ""), unquote(parts.password) if parts.password else None


def role_sql(login: str, password: str | None, migrator: str) -> str:
    """The SQL a DBA runs to create the roles (shown when the migrator can't)."""
    secret = f" PASSWORD '{password}'" if password else ""
    return (
        f"CREATE ROLE {GROUP_ROLE} NOLOGIN;\n"
        f"CREATE ROLE {MIGRATOR_ROLE} NOLOGIN;\n"
        f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE{secret};\n"
        f"GRANT {GROUP_ROLE} TO {login};\n"
        f"GRANT {MIGRATOR_ROLE} TO {migrator};"
    )


async def ensure_roles(connection: asyncpg.Connection, login: str, password: str | None) -> None:
    """Create the group roles and the runtime login; put the migrator (``current_user``) in ``chat_migrator``.

    ``chat_runtime`` (NOLOGIN) holds the runtime grants and ``login`` is its member;
    ``chat_migrator`` (NOLOGIN) is the role the policies name for the owner, who writes
    seed data under the same policies (FORCE). Raises ``RoleSetupError`` with the SQL a
    DBA must run when a role is missing and the migrator has neither SUPERUSER nor CREATEROLE.
    """
    migrator = await connection.fetchval("SELECT current_user")
    can_create = await connection.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    ready = await connection.fetchval(
        "SELECT count(*) = 3 AND pg_has_role($1, $2, 'MEMBER') AND pg_has_role(current_user, $3, 'MEMBER')"
        " FROM pg_roles WHERE rolname IN ($1, $2, $3)",
        login,
        GROUP_ROLE,
        MIGRATOR_ROLE,
    )
    if not can_create:
        if ready:
            return
        raise RoleSetupError(
            "the migrator may not create roles; ask a DBA to run:\n" + role_sql(login, password, migrator)
        )
    await connection.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_runtime') THEN
                CREATE ROLE chat_runtime NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_migrator') THEN
                CREATE ROLE chat_migrator NOLOGIN;
            END IF;
        END $$;
        GRANT chat_migrator TO CURRENT_USER;
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


async def _migrations_run() -> int:
    """How many migrations the database has recorded (0 before the first)."""
    from piccolo.apps.migrations.tables import Migration

    if not await Migration.table_exists():
        return 0
    return int(await Migration.count())


async def migrate() -> str:
    """Run Piccolo's pending migrations; return one line saying what happened.

    Piccolo's own lines ("N migrations already complete" beside "N not yet run") are
    kept out of the output, and shown only when a migration fails.
    """
    from piccolo.apps.migrations.commands.forwards import run_forwards

    before = await _migrations_run()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            result = await run_forwards(app_name="all")
    except Exception as error:  # a migration's own SQL failed: say which, and why
        raise MigrationError(f"migrations failed: {error!r}\n{printed.getvalue()}") from error
    if not result.success:
        raise MigrationError(f"migrations failed: {result.message}\n{printed.getvalue()}")
    after = await _migrations_run()
    return f"migrations: {after - before} applied, {after} in all"


async def upgrade(owner_dsn: str, runtime_dsn: str) -> str:
    """Bring the database at ``owner_dsn`` to the current roles, schema and policies (idempotent).

    Returns a line saying what the migrations did.
    """
    connection = await asyncpg.connect(owner_dsn)
    try:
        await ensure_roles(connection, *runtime_login(runtime_dsn))
        use_database(owner_dsn)
        done = await migrate()
        async with connection.transaction():
            await apply_policies(connection)
    finally:
        await connection.close()
    return done
