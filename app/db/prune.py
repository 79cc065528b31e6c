"""``db prune [--dry-run]``: retention. Per tenant with ``retention_days``, delete what is older than that.

What goes: the sessions whose ``updated_at`` is older than the tenant's retention (their
messages by the cascade), the ``access_log`` entries about them, and the entries older
than the retention. It runs as the owner (``DATABASE_URL``): the runtime role may never
delete an entry, and the owner may only through ``access_log_prune``. The owner is bound
by FORCE like the API, so every batch runs under the tenant context of one user
(``set_context``), the owner of the sessions it deletes: the sessions policies let it
delete them and the counters trigger counts them off that user's ``session_counts`` row.

Short batches: each deletes at most ``batch`` sessions (or entries) in a transaction of
its own, and takes the sessions with ``FOR UPDATE SKIP LOCKED``, so it never waits for the
API (a session being written is left for the next run: it is no longer expired anyway) and
two runs at once never take the same session; each counts only rows its DELETE returned,
so concurrent runs delete and count every row once. After each batch it rests as long as the
batch took (``PAUSE``), so the API keeps most of the machine while it runs.

Which tenants have a retention is the one cross-tenant read: the tenants' FORCE is lifted
for it inside a transaction that is rolled back (an owner that bypasses RLS needs none).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from app.db.context import set_context

BATCH = 500
PAUSE = 1.0  # after each batch, rest this many times as long as it took: the API keeps the larger share of the machine
LOCK_TIMEOUT_MS = 1000  # for the moment the tenants list takes its lock; the API waits at most that long

_BYPASSES_SQL = "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
_TENANTS_SQL = """
    SELECT tenant_id, name, retention_days, now() - retention_days * interval '1 day' AS cutoff
    FROM tenants WHERE retention_days IS NOT NULL ORDER BY name
"""
_USERS_SQL = "SELECT user_id FROM users WHERE tenant_id = $1 ORDER BY user_id"
# Taken first by every batch: two runs never work on one user's rows at once (they would lock
# access_log entries in different orders: a deadlock); one waits for the other's batch to end.
_USER_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('chat db prune'), hashtext($1::uuid::text))"
# One batch of one user's expired sessions, with the entries about them. $1 tenant, $2 user, $3 cutoff, $4 batch.
_SESSIONS_SQL = """
    WITH gone AS (
        DELETE FROM sessions WHERE tenant_id = $1 AND session_id IN (
            SELECT session_id FROM sessions
            WHERE tenant_id = $1 AND user_id = $2 AND updated_at < $3
            LIMIT $4 FOR UPDATE SKIP LOCKED
        )
        RETURNING session_id, message_count
    ), entries AS (
        DELETE FROM access_log
        WHERE tenant_id = $1 AND owner_id = $2 AND session_id IN (SELECT session_id FROM gone)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) AS sessions,
           (SELECT coalesce(sum(message_count), 0) FROM gone) AS messages,
           (SELECT count(*) FROM entries) AS entries
"""
_ENTRIES_SQL = """
    DELETE FROM access_log WHERE entry_id IN (
        SELECT entry_id FROM access_log WHERE tenant_id = $1 AND owner_id = $2 AND at < $3 LIMIT $4
    )
"""
_DRY_SQL = """
    WITH expired AS (
        SELECT session_id, message_count FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND updated_at < $3
    )
    SELECT (SELECT count(*) FROM expired) AS sessions,
           (SELECT coalesce(sum(message_count), 0) FROM expired) AS messages,
           (SELECT count(*) FROM access_log
             WHERE tenant_id = $1 AND owner_id = $2
               AND (at < $3 OR session_id IN (SELECT session_id FROM expired))) AS entries
"""


@dataclass
class Pruned:
    """What one tenant's prune deleted (or, dry, would delete)."""

    tenant_id: UUID
    name: str
    retention_days: int
    cutoff: datetime
    sessions: int = 0
    messages: int = 0
    entries: int = 0

    def line(self, dry_run: bool) -> str:
        """One line for the operator."""
        verb = "would delete" if dry_run else "deleted"
        return (
            f"{self.name} ({self.tenant_id}), retention {self.retention_days} days: {verb} {self.sessions} sessions,"
            f" {self.messages} messages, {self.entries} access_log entries"
        )


async def tenants_with_retention(connection: asyncpg.Connection) -> list[Pruned]:
    """Every tenant with a retention, with its cutoff (now minus the retention)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        if not await connection.fetchval(_BYPASSES_SQL):
            await connection.execute(
                f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}; ALTER TABLE public.tenants NO FORCE ROW LEVEL SECURITY"
            )
        rows = await connection.fetch(_TENANTS_SQL)
    finally:
        await transaction.rollback()  # FORCE stays as it was, whatever happened
    return [Pruned(r["tenant_id"], r["name"], r["retention_days"], r["cutoff"]) for r in rows]


async def _users(connection: asyncpg.Connection, tenant_id: UUID) -> list[UUID]:
    async with connection.transaction():
        await set_context(connection, tenant_id)
        return [row["user_id"] for row in await connection.fetch(_USERS_SQL, tenant_id)]


async def _batch(connection: asyncpg.Connection, tenant_id: UUID, user_id: UUID) -> None:
    """Begin a batch: ``user_id``'s context and the user's lock (inside the caller's transaction)."""
    await connection.execute(_USER_LOCK_SQL, user_id)
    await set_context(connection, tenant_id, user_id)


async def prune_tenant(connection: asyncpg.Connection, tenant: Pruned, *, dry_run: bool, batch: int = BATCH) -> None:
    """Delete (or, dry, count) what ``tenant``'s retention lets go, one user and one batch at a time."""
    for user_id in await _users(connection, tenant.tenant_id):
        args = (tenant.tenant_id, user_id, tenant.cutoff)
        if dry_run:
            async with connection.transaction():
                await set_context(connection, tenant.tenant_id, user_id)
                row = await connection.fetchrow(_DRY_SQL, *args)
            tenant.sessions += row["sessions"]
            tenant.messages += row["messages"]
            tenant.entries += row["entries"]
            continue
        while True:
            started = time.monotonic()
            async with connection.transaction():
                await _batch(connection, tenant.tenant_id, user_id)
                row = await connection.fetchrow(_SESSIONS_SQL, *args, batch)
            tenant.sessions += row["sessions"]
            tenant.messages += row["messages"]
            tenant.entries += row["entries"]
            if not row["sessions"]:
                break
            await asyncio.sleep((time.monotonic() - started) * PAUSE)
        while True:
            async with connection.transaction():
                await _batch(connection, tenant.tenant_id, user_id)
                status = await connection.execute(_ENTRIES_SQL, *args, batch)
            deleted = int(status.split()[-1])
            tenant.entries += deleted
            if not deleted:
                break


async def prune(dsn: str, *, dry_run: bool, batch: int = BATCH) -> list[Pruned]:
    """Prune every tenant with a retention (see the module docstring); what each lost, or would lose."""
    connection = await asyncpg.connect(dsn)
    try:
        tenants = await tenants_with_retention(connection)
        for tenant in tenants:
            await prune_tenant(connection, tenant, dry_run=dry_run, batch=batch)
        return tenants
    finally:
        await connection.close()
