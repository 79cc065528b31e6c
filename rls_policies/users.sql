-- users: a request sees the users of its own tenant. The runtime role may only read.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS users_select ON users;
DROP POLICY IF EXISTS users_insert ON users;
DROP POLICY IF EXISTS users_update ON users;
DROP POLICY IF EXISTS users_delete ON users;

CREATE POLICY users_select ON users FOR SELECT
    USING (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY users_insert ON users FOR INSERT
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY users_update ON users FOR UPDATE
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY users_delete ON users FOR DELETE
    USING (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON users FROM PUBLIC, chat_runtime;
GRANT SELECT ON users TO chat_runtime;
