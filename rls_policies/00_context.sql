-- Request context shared by every policy.
--
-- The API sets, transaction-local, for each request:
--   set_config('app.tenant_id', '<tenant uuid>', true)
--   set_config('app.user_id',   '<user uuid>',   true)
-- After such a transaction ends the settings read '' (not NULL) on that
-- connection, and with no context at all they are unset: nullif(..., '') maps
-- both to NULL, and a comparison with NULL is never true, so a query without
-- context sees zero rows (never an error, never all rows).
--
-- Policies call these functions wrapped in (select ...), which PostgreSQL
-- evaluates once per query (an InitPlan), not once per row.

CREATE SCHEMA IF NOT EXISTS rls;

CREATE OR REPLACE FUNCTION rls.tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION rls.user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

-- True when the context's user is an admin of the context's tenant. The role is
-- read from the users table, never from the token or a setting.
CREATE OR REPLACE FUNCTION rls.is_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.users
            WHERE user_id = rls.user_id() AND tenant_id = rls.tenant_id() AND role = 'admin'
        )
    $$;

REVOKE ALL ON SCHEMA rls FROM PUBLIC;
GRANT USAGE ON SCHEMA rls TO chat_runtime;
GRANT EXECUTE ON FUNCTION rls.tenant_id(), rls.user_id(), rls.is_admin() TO chat_runtime;
GRANT USAGE ON SCHEMA public TO chat_runtime;
