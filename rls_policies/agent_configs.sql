-- agent_configs: a request sees the agents of its own tenant. The runtime role may only read.
ALTER TABLE agent_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_configs FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS agent_configs_select ON agent_configs;
DROP POLICY IF EXISTS agent_configs_insert ON agent_configs;
DROP POLICY IF EXISTS agent_configs_update ON agent_configs;
DROP POLICY IF EXISTS agent_configs_delete ON agent_configs;

CREATE POLICY agent_configs_select ON agent_configs FOR SELECT
    USING (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY agent_configs_insert ON agent_configs FOR INSERT
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY agent_configs_update ON agent_configs FOR UPDATE
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));
CREATE POLICY agent_configs_delete ON agent_configs FOR DELETE
    USING (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON agent_configs FROM PUBLIC, chat_runtime;
GRANT SELECT ON agent_configs TO chat_runtime;
