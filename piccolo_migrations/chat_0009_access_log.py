"""Privacy: ``tenants.retention_days`` and ``access_log``, the record of admins' reads of others' sessions.

``access_log`` rows are written by the read queries themselves (``public.chat_record_read``,
created with the policies by ``db upgrade``), in the reading transaction. Its owner and reader are users
of the entry's tenant (composite foreign keys); the session is named without a foreign key,
so that an owner deleting their session does not erase the record of who read it (``db prune``
removes entries with their sessions and past the retention). The unique key makes one read
(one transaction: ``at`` is its start) one entry per session and action, and serves the
reads by session; the other indexes serve the tenant's and an owner's lists, newest first,
and the prune (an owner's entries older than a date).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants.retention_days; access_log of admins' reads"

SQL = r"""
ALTER TABLE tenants ADD COLUMN retention_days integer
    CONSTRAINT tenants_retention_days_positive CHECK (retention_days > 0);

CREATE TABLE access_log (
    entry_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    session_id uuid NOT NULL,
    owner_id uuid NOT NULL,
    reader_id uuid NOT NULL,
    action text NOT NULL
        CONSTRAINT access_log_action_check CHECK (action IN ('session', 'messages', 'events', 'export', 'search')),
    at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT access_log_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    CONSTRAINT access_log_owner_fk FOREIGN KEY (tenant_id, owner_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT access_log_reader_fk FOREIGN KEY (tenant_id, reader_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE,
    CONSTRAINT access_log_one_per_read UNIQUE (tenant_id, session_id, at, reader_id, action)
);
CREATE INDEX access_log_tenant_at ON access_log (tenant_id, at DESC, entry_id DESC);
CREATE INDEX access_log_owner_at ON access_log (tenant_id, owner_id, at DESC, entry_id DESC);
CREATE INDEX access_log_reader ON access_log (tenant_id, reader_id);
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
