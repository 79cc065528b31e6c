-- sessions: a supporter reads and writes only their own sessions; an admin reads
-- every session of their tenant and writes only their own. Another tenant's rows
-- are invisible to everyone.
ALTER TABLE public.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sessions FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY sessions_tenant_floor ON public.sessions AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY sessions_select ON public.sessions FOR SELECT TO chat_runtime, chat_migrator
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))
    );
CREATE POLICY sessions_insert ON public.sessions FOR INSERT TO chat_runtime, chat_migrator
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY sessions_update ON public.sessions FOR UPDATE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY sessions_delete ON public.sessions FOR DELETE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON public.sessions FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sessions TO chat_runtime;

-- Per-user session counters (public.session_counts), kept in the transaction that
-- writes the session, so the list's total reads no session rows under any archived/pinned
-- filter: sessions, archived, pinned and pinned_archived (pinned AND archived) per user.
-- The function runs as its owner (SECURITY DEFINER) because the runtime role may only
-- read the counters; the owner is subject to the same policies (FORCE), so a transaction
-- only ever counts for the user of its own context. An UPDATE adds the new row's counts
-- before it takes the old row's away, so no counter ever dips below 0.
CREATE OR REPLACE FUNCTION public.chat_session_counters() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.session_counts AS c (tenant_id, user_id, sessions, archived, pinned, pinned_archived)
        VALUES (NEW.tenant_id, NEW.user_id, 1, NEW.archived::int, NEW.pinned::int, (NEW.pinned AND NEW.archived)::int)
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET
            sessions = c.sessions + 1,
            archived = c.archived + EXCLUDED.archived,
            pinned = c.pinned + EXCLUDED.pinned,
            pinned_archived = c.pinned_archived + EXCLUDED.pinned_archived;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE public.session_counts SET
            sessions = sessions - 1,
            archived = archived - OLD.archived::int,
            pinned = pinned - OLD.pinned::int,
            pinned_archived = pinned_archived - (OLD.pinned AND OLD.archived)::int
         WHERE tenant_id = OLD.tenant_id AND user_id = OLD.user_id;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.chat_session_counters() FROM PUBLIC;

CREATE OR REPLACE TRIGGER sessions_counters
    AFTER INSERT OR DELETE OR UPDATE OF tenant_id, user_id, pinned, archived ON public.sessions
    FOR EACH ROW EXECUTE FUNCTION public.chat_session_counters();

-- Live updates (GET /api/{tenant_id}/events): every session written publishes, at COMMIT,
-- a notification on the channel chat_events that carries ids only, never a title:
--   {"kind": "session" | "session_deleted", "tenant_id": …, "session_id": …, "user_id": …}
-- (NOTIFY is transactional: a rolled-back write publishes nothing.) The API process that
-- listens does not trust the payload for anything but routing: it reads the row again under
-- the context of each stream that might want it, with RLS, and sends only what that read
-- returns. It runs with the writer's rights (pg_notify needs no other).
CREATE OR REPLACE FUNCTION public.chat_publish_session() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    written public.sessions := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    PERFORM pg_catalog.pg_notify('chat_events', pg_catalog.json_build_object(
        'kind', CASE WHEN TG_OP = 'DELETE' THEN 'session_deleted' ELSE 'session' END,
        'tenant_id', written.tenant_id, 'session_id', written.session_id, 'user_id', written.user_id)::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.chat_publish_session() FROM PUBLIC;

CREATE OR REPLACE TRIGGER sessions_publish
    AFTER INSERT OR UPDATE OR DELETE ON public.sessions
    FOR EACH ROW EXECUTE FUNCTION public.chat_publish_session();
