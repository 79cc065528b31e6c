-- sessions: a supporter reads and writes only their own sessions; an admin reads
-- every session of their tenant and writes only their own. Another tenant's rows
-- are invisible to everyone.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS sessions_select ON sessions;
DROP POLICY IF EXISTS sessions_insert ON sessions;
DROP POLICY IF EXISTS sessions_update ON sessions;
DROP POLICY IF EXISTS sessions_delete ON sessions;

CREATE POLICY sessions_select ON sessions FOR SELECT
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.is_admin()))
    );
CREATE POLICY sessions_insert ON sessions FOR INSERT
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY sessions_update ON sessions FOR UPDATE
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY sessions_delete ON sessions FOR DELETE
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON sessions FROM PUBLIC, chat_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO chat_runtime;
