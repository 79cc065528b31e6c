-- access_log: who read which session of someone else, when, and how (contract §7).
--
-- An entry is written by the read itself: the queries that read a session's content for
-- a caller (GET the session, its messages, the live updates, an export, a search hit)
-- call public.chat_record_read for each session they return, inside the same statement
-- and so the same transaction. When the caller is an admin reading a session they do not
-- own, it inserts {tenant_id, session_id, owner_id, reader_id, action, at}; if that insert
-- fails, the read fails with it. Supporters read only their own sessions, and nobody's
-- own reads are recorded, so their reads write nothing (and run on the read replica).
--
-- The runtime role may INSERT (only as itself, in its tenant, now, for a session it can
-- read and does not own) and SELECT (an admin: the tenant's entries; anyone: the entries
-- about their own sessions). It has no UPDATE, DELETE or TRUNCATE, and no policy would
-- let it: entries are never changed. Only the owner's `python -m app db prune` deletes
-- them (access_log_prune), with the expired sessions and past the tenant's retention.
ALTER TABLE public.access_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.access_log FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY access_log_tenant_floor ON public.access_log AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY access_log_select ON public.access_log FOR SELECT TO chat_runtime, chat_migrator
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (owner_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))
    );
-- The reader is the context's user, who does not own the session, and the time is the transaction's.
CREATE POLICY access_log_insert ON public.access_log FOR INSERT TO chat_runtime, chat_migrator
    WITH CHECK (
        tenant_id = (SELECT rls.tenant_id())
        AND reader_id = (SELECT rls.user_id())
        AND owner_id <> reader_id
        AND at = pg_catalog.now()
    );
-- And, whatever the permissive policies allow, the session is one the reader can read, owned by
-- owner_id (the subquery runs under the sessions policies). A policy of its own: restrictive, it
-- narrows every insert, and the isolation proof (pgrls) needs only the tenant floor.
CREATE POLICY access_log_readable_session ON public.access_log AS RESTRICTIVE FOR INSERT
    TO chat_runtime, chat_migrator
    WITH CHECK (
        EXISTS (
            SELECT 1 FROM public.sessions AS s
             WHERE s.tenant_id = access_log.tenant_id AND s.session_id = access_log.session_id
               AND s.user_id = access_log.owner_id
        )
    );
-- db prune (the owner, never the runtime role): an owner's entries, one user's context at a time.
CREATE POLICY access_log_prune ON public.access_log FOR DELETE TO chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND owner_id = (SELECT rls.user_id()));

REVOKE ALL ON public.access_log FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT, INSERT ON public.access_log TO chat_runtime;

-- Records that the context's user reads session `read_session` (owned by `read_owner`) by
-- `read_action`, when that user is an admin who does not own it; always returns true, so a
-- read query calls it in its WHERE clause or select list for each session it returns:
--   ... WHERE s.tenant_id = $1 AND s.session_id = $2
--         AND public.chat_record_read(s.tenant_id, s.session_id, s.user_id, 'session')
-- One read (one transaction) records a session once per action (ON CONFLICT: `at` is the
-- transaction's start). It runs with the caller's rights: access_log_insert checks the row.
CREATE OR REPLACE FUNCTION public.chat_record_read(read_tenant uuid, read_session uuid, read_owner uuid, read_action text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF read_owner IS DISTINCT FROM rls.user_id() AND rls.role() = 'admin' THEN
        INSERT INTO public.access_log (tenant_id, session_id, owner_id, reader_id, action)
        VALUES (read_tenant, read_session, read_owner, rls.user_id(), read_action)
        ON CONFLICT ON CONSTRAINT access_log_one_per_read DO NOTHING;
    END IF;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION public.chat_record_read(uuid, uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.chat_record_read(uuid, uuid, uuid, text) TO chat_runtime, chat_migrator;
