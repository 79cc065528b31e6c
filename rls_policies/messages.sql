-- messages: readable with their session (the owner, or an admin of the tenant);
-- written only into a session the context's user owns. The runtime role may read
-- and insert; messages go away with their session (ON DELETE CASCADE).
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS messages_select ON messages;
DROP POLICY IF EXISTS messages_insert ON messages;
DROP POLICY IF EXISTS messages_update ON messages;
DROP POLICY IF EXISTS messages_delete ON messages;

CREATE POLICY messages_select ON messages FOR SELECT
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (
            (SELECT rls.is_admin())
            OR EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.session_id = messages.session_id
                  AND s.tenant_id = (SELECT rls.tenant_id())
                  AND s.user_id = (SELECT rls.user_id())
            )
        )
    );
CREATE POLICY messages_insert ON messages FOR INSERT
    WITH CHECK (
        tenant_id = (SELECT rls.tenant_id())
        AND EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.session_id = messages.session_id
              AND s.tenant_id = (SELECT rls.tenant_id())
              AND s.user_id = (SELECT rls.user_id())
        )
    );
CREATE POLICY messages_update ON messages FOR UPDATE
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.session_id = messages.session_id
              AND s.tenant_id = (SELECT rls.tenant_id())
              AND s.user_id = (SELECT rls.user_id())
        )
    )
    WITH CHECK (
        tenant_id = (SELECT rls.tenant_id())
        AND EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.session_id = messages.session_id
              AND s.tenant_id = (SELECT rls.tenant_id())
              AND s.user_id = (SELECT rls.user_id())
        )
    );
CREATE POLICY messages_delete ON messages FOR DELETE
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.session_id = messages.session_id
              AND s.tenant_id = (SELECT rls.tenant_id())
              AND s.user_id = (SELECT rls.user_id())
        )
    );

REVOKE ALL ON messages FROM PUBLIC, chat_runtime;
GRANT SELECT, INSERT ON messages TO chat_runtime;
