-- session_counts: how many sessions each user has, kept by the trigger on sessions
-- (chat_session_counters, SECURITY DEFINER) in the transaction that writes the session.
-- Readable like the sessions themselves (own row; an admin: the tenant's rows);
-- written only for the context's own user. The runtime role may only read.
ALTER TABLE session_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_counts FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS session_counts_select ON session_counts;
DROP POLICY IF EXISTS session_counts_insert ON session_counts;
DROP POLICY IF EXISTS session_counts_update ON session_counts;
DROP POLICY IF EXISTS session_counts_delete ON session_counts;

CREATE POLICY session_counts_select ON session_counts FOR SELECT
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.is_admin()))
    );
CREATE POLICY session_counts_insert ON session_counts FOR INSERT
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY session_counts_update ON session_counts FOR UPDATE
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY session_counts_delete ON session_counts FOR DELETE
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON session_counts FROM PUBLIC, chat_runtime;
GRANT SELECT ON session_counts TO chat_runtime;
