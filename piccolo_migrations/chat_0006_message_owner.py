"""Each message carries its session's owner (``messages.user_id``), kept equal to it by a foreign key.

The messages policies then compare the row's own columns, like the sessions policies,
instead of looking the session up with ``EXISTS``: cheaper per row, and a predicate an
outside prover (pgrls) can decide. The composite foreign key (tenant_id, session_id,
user_id) → sessions makes the database refuse a message whose owner is not its session's.

Existing messages are filled in from their sessions; FORCE ROW LEVEL SECURITY is lifted
for that inside this migration's transaction, so the owner reads every row. On a large
table this rewrites every message once.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T22:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "messages.user_id: the session's owner, kept by a composite foreign key"

SQL = r"""
ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE messages NO FORCE ROW LEVEL SECURITY;

ALTER TABLE sessions ADD CONSTRAINT sessions_tenant_session_user_key UNIQUE (tenant_id, session_id, user_id);
ALTER TABLE messages ADD COLUMN user_id uuid;
UPDATE messages AS m SET user_id = s.user_id
  FROM sessions AS s
 WHERE s.tenant_id = m.tenant_id AND s.session_id = m.session_id;
ALTER TABLE messages ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_session_fk;
ALTER TABLE messages ADD CONSTRAINT messages_session_fk FOREIGN KEY (tenant_id, session_id, user_id)
    REFERENCES sessions (tenant_id, session_id, user_id) ON DELETE CASCADE;

ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
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
