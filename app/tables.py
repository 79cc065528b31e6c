"""Piccolo tables of the chat sessions schema (the API reads and writes them with plain SQL).

The schema itself is owned by ``piccolo_migrations/``: the first migration creates these
columns; the later ones are raw SQL for what the column API does not say here (the
composite tenant-consistent foreign keys, the checks, composite indexes, the
``session_counts`` table, ``messages.user_id``). Row-level security, its functions and
the triggers are applied by ``db upgrade`` from ``rls_policies/*.sql``.
"""

from piccolo.columns import UUID, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.table import Table


class Tenant(Table, tablename="tenants"):
    """A customer company; every other row belongs to exactly one."""

    tenant_id = UUID(primary_key=True, default=UUID4())
    name = Varchar(length=100, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    retention_days = Integer(null=True, default=None)  # db prune: sessions older than this go; NULL: forever


class User(Table, tablename="users"):
    """A person of a tenant; ``role`` is 'admin' or 'supporter'."""

    user_id = UUID(primary_key=True, default=UUID4())
    tenant_id = UUID(null=False)
    email = Varchar(length=320)
    display_name = Varchar(length=200)
    role = Varchar(length=20, default="supporter")
    created_at = Timestamptz(default=TimestamptzNow())


class AgentConfig(Table, tablename="agent_configs"):
    """An AI agent a session can be held with."""

    agent_id = UUID(primary_key=True, default=UUID4())
    tenant_id = UUID(null=False)
    name = Varchar(length=100)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class Session(Table, tablename="sessions"):
    """A chat session. ``message_count`` and ``last_message_at`` are kept by a trigger."""

    session_id = UUID(primary_key=True, default=UUID4())
    tenant_id = UUID(null=False)
    user_id = UUID(null=False)
    agent_id = UUID(null=True, default=None)
    title = Varchar(length=255, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    message_count = Integer(default=0)
    last_message_at = Timestamptz(null=True, default=None)
    pinned = Boolean(default=False)
    archived = Boolean(default=False)


class Message(Table, tablename="messages"):
    """One message of a session; ``user_id`` is the session's owner (a foreign key keeps them equal)."""

    message_id = UUID(primary_key=True, default=UUID4())
    session_id = UUID(null=False)
    tenant_id = UUID(null=False)
    user_id = UUID(null=False)
    role = Varchar(length=20)
    content = Text()
    created_at = Timestamptz(default=TimestamptzNow())


class AccessLog(Table, tablename="access_log"):
    """One admin's read of a session they do not own; written by the read query (``chat_record_read``)."""

    entry_id = UUID(primary_key=True, default=UUID4())
    tenant_id = UUID(null=False)
    session_id = UUID(null=False)
    owner_id = UUID(null=False)
    reader_id = UUID(null=False)
    action = Text()
    at = Timestamptz(default=TimestamptzNow())
