"""Per-user session counters, kept in the writing transaction: the list's ``total`` reads no session rows.

``count(*)`` over an admin's whole tenant grows with the tenant's sessions; summing one
counter row per user does not. The trigger runs as its owner (SECURITY DEFINER, fixed
search_path) so the runtime role only reads the counters. The function and trigger made
here are history: ``db upgrade`` maintains them, with the table's
policies, in its step after the migrations.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T14:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "session_counts: sessions per user, kept by a trigger on sessions"

SQL = r"""
CREATE TABLE session_counts (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    sessions bigint NOT NULL DEFAULT 0 CONSTRAINT session_counts_sessions_check CHECK (sessions >= 0),
    CONSTRAINT session_counts_pkey PRIMARY KEY (tenant_id, user_id),
    CONSTRAINT session_counts_user_fk FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);

CREATE FUNCTION chat_session_counters() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO session_counts AS c (tenant_id, user_id, sessions)
        VALUES (NEW.tenant_id, NEW.user_id, 1)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET sessions = c.sessions + 1;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE session_counts SET sessions = sessions - 1
         WHERE tenant_id = OLD.tenant_id AND user_id = OLD.user_id;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION chat_session_counters() FROM PUBLIC;

CREATE TRIGGER sessions_counters
    AFTER INSERT OR DELETE OR UPDATE OF tenant_id, user_id ON sessions
    FOR EACH ROW EXECUTE FUNCTION chat_session_counters();

-- Existing sessions: the owner reads them all while FORCE is lifted inside this transaction.
ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
INSERT INTO session_counts (tenant_id, user_id, sessions)
    SELECT tenant_id, user_id, count(*) FROM sessions GROUP BY tenant_id, user_id;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
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
