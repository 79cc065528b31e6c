-- agent_configs: a request sees the agents of its own tenant. The runtime role may only read them.
ALTER TABLE public.agent_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.agent_configs FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY agent_configs_tenant_floor ON public.agent_configs AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY agent_configs_access ON public.agent_configs FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON public.agent_configs FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT ON public.agent_configs TO chat_runtime;
