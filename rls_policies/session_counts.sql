-- session_counts: how many sessions each user has, kept by the sessions_counters
-- trigger (see sessions.sql). Readable like the sessions themselves (one's own row;
-- an admin: the tenant's rows); written only for the context's own user. The runtime
-- role may only read.
ALTER TABLE public.session_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.session_counts FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY session_counts_tenant_floor ON public.session_counts AS RESTRICTIVE FOR ALL
    TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY session_counts_select ON public.session_counts FOR SELECT TO chat_runtime, chat_migrator
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))
    );
CREATE POLICY session_counts_insert ON public.session_counts FOR INSERT TO chat_runtime, chat_migrator
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY session_counts_update ON public.session_counts FOR UPDATE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY session_counts_delete ON public.session_counts FOR DELETE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON public.session_counts FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT ON public.session_counts TO chat_runtime;
