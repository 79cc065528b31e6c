"""Tenant-consistent keys, checks, indexes and the message counter trigger.

Piccolo's column API has no composite foreign keys, so they are raw SQL here. They make
the database itself refuse rows that mix tenants: a session must point at a user (and
an agent) of its own tenant, a message at a session of its own tenant. The functions and
the trigger made here are history: ``db upgrade`` maintains them, with the
policies, in its step after the migrations.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T13:42:25:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenant-consistent keys, checks, indexes, message counters"

SQL = r"""
ALTER TABLE users
    ADD CONSTRAINT users_tenant_fk FOREIGN KEY (tenant_id)
        REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    ADD CONSTRAINT users_tenant_user_key UNIQUE (tenant_id, user_id),
    ADD CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email),
    ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'supporter'));

ALTER TABLE agent_configs
    ADD CONSTRAINT agent_configs_tenant_fk FOREIGN KEY (tenant_id)
        REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    ADD CONSTRAINT agent_configs_tenant_agent_key UNIQUE (tenant_id, agent_id),
    ADD CONSTRAINT agent_configs_tenant_name_key UNIQUE (tenant_id, name);

ALTER TABLE sessions
    ADD CONSTRAINT sessions_user_fk FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, user_id) ON DELETE CASCADE,
    ADD CONSTRAINT sessions_agent_fk FOREIGN KEY (tenant_id, agent_id)
        REFERENCES agent_configs (tenant_id, agent_id) ON DELETE SET NULL (agent_id),
    ADD CONSTRAINT sessions_tenant_session_key UNIQUE (tenant_id, session_id),
    ADD CONSTRAINT sessions_message_count_check CHECK (message_count >= 0);

ALTER TABLE messages
    ADD CONSTRAINT messages_session_fk FOREIGN KEY (tenant_id, session_id)
        REFERENCES sessions (tenant_id, session_id) ON DELETE CASCADE,
    ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    ADD CONSTRAINT messages_content_check CHECK (char_length(content) BETWEEN 1 AND 32768);

-- Distinct creation times inside one transaction keep history order stable.
ALTER TABLE sessions ALTER COLUMN created_at SET DEFAULT clock_timestamp();
ALTER TABLE sessions ALTER COLUMN updated_at SET DEFAULT clock_timestamp();
ALTER TABLE messages ALTER COLUMN created_at SET DEFAULT clock_timestamp();

-- Every filter and sort the API offers, with session_id as the tie-break.
CREATE INDEX sessions_user_updated_idx ON sessions (tenant_id, user_id, updated_at, session_id);
CREATE INDEX sessions_user_created_idx ON sessions (tenant_id, user_id, created_at, session_id);
CREATE INDEX sessions_tenant_updated_idx ON sessions (tenant_id, updated_at, session_id);
CREATE INDEX sessions_tenant_created_idx ON sessions (tenant_id, created_at, session_id);
CREATE INDEX messages_session_created_idx ON messages (session_id, created_at, message_id);

-- The title an untitled session takes from its first user message: whitespace
-- collapsed; over 80 characters, the longest run of whole words within 79
-- characters (a longer first word is cut at 79) followed by an ellipsis.
CREATE FUNCTION chat_title_from(content text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    collapsed text := btrim(regexp_replace(content, '\s+', ' ', 'g'));
    head text;
    cut int;
BEGIN
    IF char_length(collapsed) <= 80 THEN
        RETURN nullif(collapsed, '');
    END IF;
    head := left(collapsed, 80);
    cut := char_length(head) - strpos(reverse(head), ' ');
    IF strpos(head, ' ') = 0 THEN
        cut := 79;
    END IF;
    RETURN left(collapsed, cut) || '…';
END
$$;

-- Counters kept in the writing transaction: message_count stays exact under
-- concurrent inserts (the session row is locked by the UPDATE), updated_at moves
-- with each new message, the first user message titles an untitled session, and
-- the list never counts messages at read time.
CREATE FUNCTION chat_message_counters() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE sessions
           SET message_count = message_count + 1,
               last_message_at = greatest(last_message_at, NEW.created_at),
               updated_at = greatest(updated_at, NEW.created_at),
               title = CASE WHEN title IS NULL AND NEW.role = 'user'
                            THEN chat_title_from(NEW.content) ELSE title END
         WHERE session_id = NEW.session_id;
        RETURN NEW;
    END IF;
    UPDATE sessions
       SET message_count = message_count - 1,
           last_message_at = (SELECT max(m.created_at) FROM messages m
                               WHERE m.session_id = OLD.session_id)
     WHERE session_id = OLD.session_id;
    RETURN OLD;
END
$$;

CREATE TRIGGER messages_counters
    AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION chat_message_counters();
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
