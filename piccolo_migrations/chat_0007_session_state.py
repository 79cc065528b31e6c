"""Pinned and archived sessions: the two flags, their counters, and indexes led by ``archived``.

- ``sessions.pinned`` and ``sessions.archived``: NOT NULL, default false.
- ``session_counts`` gains ``archived``, ``pinned`` and ``pinned_archived`` (per user), so the
  list's ``total`` stays a sum of counter rows under every archived/pinned filter. Every
  existing session is neither, so the new counters start at 0. The trigger that keeps them
  is maintained by ``db upgrade``, with the sessions policies.
- The four list indexes are rebuilt with ``archived`` after the tenant (and user), so the
  default list (not archived) and the archived view each walk one index range in sort order,
  and a keyset cursor ``(sort key, session_id) < (…)`` is an index condition; ``pinned`` and
  ``agent_id`` are included for index-only filtering. An index led by (tenant_id, agent_id,
  archived) serves the ``agent_id`` filter: its count, its pages by ``updated_at`` (the default
  sort) in order, and the agent foreign key.
- An index on users (tenant_id, display_name, user_id) serves the users directory's order.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "sessions.pinned, sessions.archived, their counters and indexes"

SQL = r"""
ALTER TABLE sessions
    ADD COLUMN pinned boolean NOT NULL DEFAULT false,
    ADD COLUMN archived boolean NOT NULL DEFAULT false;

ALTER TABLE session_counts
    ADD COLUMN archived bigint NOT NULL DEFAULT 0 CONSTRAINT session_counts_archived_check CHECK (archived >= 0),
    ADD COLUMN pinned bigint NOT NULL DEFAULT 0 CONSTRAINT session_counts_pinned_check CHECK (pinned >= 0),
    ADD COLUMN pinned_archived bigint NOT NULL DEFAULT 0
        CONSTRAINT session_counts_pinned_archived_check CHECK (pinned_archived >= 0);

DROP INDEX sessions_user_updated_idx;
DROP INDEX sessions_user_created_idx;
DROP INDEX sessions_tenant_updated_idx;
DROP INDEX sessions_tenant_created_idx;
CREATE INDEX sessions_user_updated_idx ON sessions (tenant_id, user_id, archived, updated_at, session_id)
    INCLUDE (pinned, agent_id);
CREATE INDEX sessions_user_created_idx ON sessions (tenant_id, user_id, archived, created_at, session_id)
    INCLUDE (pinned, agent_id);
CREATE INDEX sessions_tenant_updated_idx ON sessions (tenant_id, archived, updated_at, session_id)
    INCLUDE (user_id, pinned, agent_id);
CREATE INDEX sessions_tenant_created_idx ON sessions (tenant_id, archived, created_at, session_id)
    INCLUDE (user_id, pinned, agent_id);
CREATE INDEX sessions_tenant_agent_idx ON sessions (tenant_id, agent_id, archived, updated_at, session_id)
    INCLUDE (user_id, pinned);

CREATE INDEX users_tenant_name_idx ON users (tenant_id, display_name, user_id);
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
