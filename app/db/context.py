"""The tenant context: the one helper that sets ``app.tenant_id``, ``app.user_id`` and ``app.role``.

Everything that reads or writes tenant rows calls it inside its transaction: the request
transaction, the seed, the audit, the development routes, tests and benchmarks. It calls
``rls.set_context`` (``rls_policies/00_context.sql``), which sets the three settings
transaction-local and reads the role from ``users.role``, never from a token.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

CONTEXT_SQL = "SELECT user_id, tenant_id, email, display_name, role FROM rls.set_context($1, $2)"


async def set_context(
    connection: asyncpg.Connection, tenant_id: UUID | None, user_id: UUID | None = None
) -> asyncpg.Record | None:
    """Set the transaction-local context; return the user's row when ``user_id`` is a user of the tenant.

    Raises ``RuntimeError`` outside a transaction, where the settings would end with the statement.
    """
    if not connection.is_in_transaction():
        raise RuntimeError("set_context needs an open transaction")
    return await connection.fetchrow(CONTEXT_SQL, tenant_id, user_id)
