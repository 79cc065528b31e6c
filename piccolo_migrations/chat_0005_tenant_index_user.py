"""``user_id`` included in the tenant-wide session indexes, for index-only paging.

The list finds a page's ids first (``app.sessions.queries._page_sql``). For an admin's
tenant-wide list the sessions policy also reads ``user_id``; with it in the index the ids
come from an index-only scan, so a deep offset skips index entries, not session rows.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T14:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "user_id included in the tenant-wide session indexes"

SQL = r"""
DROP INDEX sessions_tenant_updated_idx;
DROP INDEX sessions_tenant_created_idx;
CREATE INDEX sessions_tenant_updated_idx ON sessions (tenant_id, updated_at, session_id) INCLUDE (user_id);
CREATE INDEX sessions_tenant_created_idx ON sessions (tenant_id, created_at, session_id) INCLUDE (user_id);
"""


async def run_sql(sql: str) -> None:
    """Execute ``sql`` (several statements) on the migration's own transaction."""
    transaction = engine_finder().current_transaction.get()
    await transaction.connection.execute(sql)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="chat", description=DESCRIPTION)

    async def run() -> None:
        await run_sql(SQL)

    manager.add_raw(run)
    return manager
