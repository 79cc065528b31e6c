-- The request context every policy reads, and the one function that sets it.
--
-- For each request the API runs, inside the request's one transaction:
--   SELECT ... FROM rls.set_context('<tenant uuid>', '<user uuid>')
-- which sets app.tenant_id, app.user_id and app.role TRANSACTION-LOCAL
-- (set_config(..., true)): they end with the transaction, so a pooled connection
-- never carries one request's context into another's. app.role is copied from
-- users.role of that user in that tenant (never from the token), and the function
-- returns that user's row, or nothing when the user is not in the tenant.
--
-- After such a transaction ends the settings read '' (not NULL) on that connection,
-- and with no context at all they are unset: nullif(..., '') maps both to NULL, and a
-- comparison with NULL is never true, so a query without context sees zero rows
-- (never an error, never all rows).
--
-- Policies call these functions wrapped in (SELECT ...), which PostgreSQL evaluates
-- once per query (an InitPlan), not once per row. Every function of this directory
-- has a fixed search_path (pg_catalog, pg_temp) and names its objects with their
-- schema, so nothing created in another schema (a function, an operator, a temporary
-- table) can change what it does.
--
-- This directory is a repeatable step: `python -m app db upgrade` applies it after
-- the migrations, in one transaction, having first dropped every policy of the
-- tables these files name; the files then create everything again. Functions use
-- CREATE OR REPLACE; a function that is no longer wanted is dropped below.

CREATE SCHEMA IF NOT EXISTS rls;
REVOKE ALL ON SCHEMA rls FROM PUBLIC;
GRANT USAGE ON SCHEMA rls TO chat_runtime, chat_migrator;

-- Retired: the admin test is rls.role() = 'admin' now.
DROP FUNCTION IF EXISTS rls.is_admin();

CREATE OR REPLACE FUNCTION rls.tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN RETURN nullif(pg_catalog.current_setting('app.tenant_id', true), '')::uuid; END $$;

CREATE OR REPLACE FUNCTION rls.user_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN RETURN nullif(pg_catalog.current_setting('app.user_id', true), '')::uuid; END $$;

-- 'admin' or 'supporter': the role of the context's user, as rls.set_context read it
-- from users.role; NULL without a user. Policies test it as (SELECT rls.role() = 'admin'):
-- a boolean the planner estimates at one half. Written (SELECT rls.role()) = 'admin' it
-- would be estimated at 0.5 %, the planner would expect almost none of a session's
-- messages to be readable, and it would sort a whole history instead of walking its index.
CREATE OR REPLACE FUNCTION rls.role() RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN RETURN nullif(pg_catalog.current_setting('app.role', true), ''); END $$;

-- Sets the context (transaction-local) and returns the user, if they are in the tenant.
-- It runs with the caller's rights: the users row is read under the users policies,
-- with the tenant just set.
CREATE OR REPLACE FUNCTION rls.set_context(tenant uuid, member uuid DEFAULT NULL) RETURNS SETOF public.users
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    found public.users;
BEGIN
    PERFORM pg_catalog.set_config('app.tenant_id', coalesce(tenant::text, ''), true),
            pg_catalog.set_config('app.user_id', coalesce(member::text, ''), true),
            pg_catalog.set_config('app.role', '', true);
    SELECT u.* INTO found FROM public.users AS u WHERE u.tenant_id = tenant AND u.user_id = member;
    IF found.user_id IS NOT NULL THEN
        PERFORM pg_catalog.set_config('app.role', found.role, true);
        RETURN NEXT found;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION rls.tenant_id(), rls.user_id(), rls.role(), rls.set_context(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rls.tenant_id(), rls.user_id(), rls.role(), rls.set_context(uuid, uuid)
    TO chat_runtime, chat_migrator;

-- The runtime role reaches the tables of public and nothing else: no temporary
-- tables (one named like a tenant table would shadow it for unqualified names) and
-- no new objects. TEMPORARY is PUBLIC's by default; revoking it needs the database's
-- owner (or a superuser) as the migrator, and `rls audit` reports it when it stayed.
DO $$ BEGIN
    EXECUTE pg_catalog.format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM PUBLIC', pg_catalog.current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO chat_runtime, chat_migrator;
