-- tenants: a request sees only its own tenant's row. The runtime role may only read.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenants_select ON tenants;
DROP POLICY IF EXISTS tenants_insert ON tenants;
DROP POLICY IF EXISTS tenants_update ON tenants;
DROP POLICY IF EXISTS tenants_delete ON tenants;

CREATE POLICY tenants_select ON tenants FOR SELECT
    USING (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY tenants_insert ON tenants FOR INSERT
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY tenants_update ON tenants FOR UPDATE
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY tenants_delete ON tenants FOR DELETE
    USING (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON tenants FROM PUBLIC, chat_runtime;
GRANT SELECT ON tenants TO chat_runtime;
