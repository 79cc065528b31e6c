-- users: a request sees the users of its own tenant. The runtime role may only read them.
ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.users FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY users_tenant_floor ON public.users AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY users_access ON public.users FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

REVOKE ALL ON public.users FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT ON public.users TO chat_runtime;
