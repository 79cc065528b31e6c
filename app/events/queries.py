"""The reads of the live updates: short transactions with a stream's own tenant context, under RLS.

Each runs on a pooled connection of its own (a ``RequestTransaction``: the tenant's share of
the pool, BEGIN with the request limits, ``set_context``) and gives it back at once, so an
open stream holds no connection between events. Sessions and messages are read with the
statements of their own domains, so an event carries exactly what the REST routes answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from app.db.transaction import RequestTransaction
from app.messages import queries as messages
from app.messages.schemas import MessageInfo
from app.sessions import queries as sessions
from app.sessions.schemas import SessionInfo
from app.tables import User


@asynccontextmanager
async def context(
    transaction: RequestTransaction, tenant_id: UUID, user_id: UUID | None
) -> AsyncIterator[asyncpg.Record | None]:
    """Begin ``transaction`` with the context (yield the user's row, None: not a user of the tenant); end it.

    Commits when the block completes, rolls back when it raises.
    """
    completed = False
    try:
        yield await transaction.begin(tenant_id, user_id)
        completed = True
    finally:
        if transaction.is_open:
            await transaction.finish(commit=completed)


@dataclass(frozen=True)
class Rows:
    """What one reader may see of the rows a batch of notifications named."""

    sessions: dict[UUID, SessionInfo]
    messages: dict[UUID, tuple[UUID, MessageInfo]]  # message id → (the session's owner, the message)


async def read_rows(
    transaction: RequestTransaction,
    tenant_id: UUID,
    reader_id: UUID,
    session_ids: Collection[UUID],
    message_ids: Collection[UUID],
) -> Rows | None:
    """The sessions and messages among the ids that ``reader_id`` may read (None: no longer a user of the tenant).

    The one place where a stream reads rows, its own or (an admin's) those of the user it follows.
    """
    async with context(transaction, tenant_id, reader_id) as reader:
        if reader is None:
            return None
        found = await sessions.get_sessions(tenant_id, list(session_ids)) if session_ids else []
        posted = await messages.get_messages(tenant_id, list(message_ids)) if message_ids else []
    return Rows(
        sessions={session.session_id: session for session in found},
        messages={message.message_id: (owner, message) for owner, message in posted},
    )


_ROLES_SQL = "SELECT user_id, role FROM users WHERE tenant_id = {} AND user_id = ANY({})"


async def user_roles(transaction: RequestTransaction, tenant_id: UUID, user_ids: Collection[UUID]) -> dict[UUID, str]:
    """The role of each of ``user_ids`` that is still a user of the tenant, read in the tenant's context."""
    async with context(transaction, tenant_id, None):
        rows = await User.raw(_ROLES_SQL, tenant_id, list(user_ids))
    return {row["user_id"]: row["role"] for row in rows}
