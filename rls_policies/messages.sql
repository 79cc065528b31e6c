-- messages: each message carries its session's owner (user_id), kept equal to the
-- session's by a composite foreign key (tenant_id, session_id, user_id). So a message
-- is readable exactly like its session (the owner, or an admin of the tenant) and
-- insertable only by the session's owner. The runtime role may read and insert;
-- messages go away with their session (ON DELETE CASCADE).
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY messages_tenant_floor ON public.messages AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY messages_select ON public.messages FOR SELECT TO chat_runtime, chat_migrator
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))
    );
CREATE POLICY messages_insert ON public.messages FOR INSERT TO chat_runtime, chat_migrator
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY messages_update ON public.messages FOR UPDATE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY messages_delete ON public.messages FOR DELETE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON public.messages FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT, INSERT ON public.messages TO chat_runtime;

-- The title an untitled session takes from its first user message: whitespace
-- collapsed; over 80 characters, the longest run of whole words within 79
-- characters (a longer first word is cut at 79) followed by an ellipsis.
CREATE OR REPLACE FUNCTION public.chat_title_from(content text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$
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
-- the list never counts messages at read time. It runs with the caller's rights:
-- the UPDATE passes the sessions policies because only the owner inserts.
CREATE OR REPLACE FUNCTION public.chat_message_counters() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE public.sessions
           SET message_count = message_count + 1,
               last_message_at = greatest(last_message_at, NEW.created_at),
               updated_at = greatest(updated_at, NEW.created_at),
               title = CASE WHEN title IS NULL AND NEW.role = 'user'
                            THEN public.chat_title_from(NEW.content) ELSE title END
         WHERE tenant_id = NEW.tenant_id AND session_id = NEW.session_id;
        RETURN NEW;
    END IF;
    UPDATE public.sessions
       SET message_count = message_count - 1,
           last_message_at = (SELECT max(m.created_at) FROM public.messages AS m
                               WHERE m.tenant_id = OLD.tenant_id AND m.session_id = OLD.session_id)
     WHERE tenant_id = OLD.tenant_id AND session_id = OLD.session_id;
    RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION public.chat_message_counters(), public.chat_title_from(text) FROM PUBLIC;
-- The trigger calls chat_title_from with the rights of the role that inserts.
GRANT EXECUTE ON FUNCTION public.chat_title_from(text) TO chat_runtime, chat_migrator;

CREATE OR REPLACE TRIGGER messages_counters
    AFTER INSERT OR DELETE ON public.messages
    FOR EACH ROW EXECUTE FUNCTION public.chat_message_counters();

-- Live updates: a new message publishes, at COMMIT, ids only on the channel chat_events
--   {"kind": "message", "tenant_id": …, "session_id": …, "user_id": …, "message_id": …}
-- (user_id: the session's owner). The listening API process reads the message again under
-- each stream's own context, with RLS; the payload only routes (see sessions.sql). The
-- counters trigger above fires first (triggers fire by name), so the session's own
-- notification, with its new message_count, precedes the message's.
CREATE OR REPLACE FUNCTION public.chat_publish_message() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('chat_events', pg_catalog.json_build_object(
        'kind', 'message', 'tenant_id', NEW.tenant_id, 'session_id', NEW.session_id,
        'user_id', NEW.user_id, 'message_id', NEW.message_id)::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.chat_publish_message() FROM PUBLIC;

CREATE OR REPLACE TRIGGER messages_publish
    AFTER INSERT ON public.messages
    FOR EACH ROW EXECUTE FUNCTION public.chat_publish_message();
