-- tenants: a request sees only its own tenant's row. The runtime role may only read it.
ALTER TABLE public.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenants FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY tenants_tenant_floor ON public.tenants AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY tenants_access ON public.tenants FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON public.tenants FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT ON public.tenants TO chat_runtime;
