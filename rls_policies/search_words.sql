-- search_words: the distinct words of each session's title (message_id NULL) and of each
-- message, kept by the triggers below, read by search (app/sessions/search.py). A row
-- carries its session's tenant and owner, so it is readable exactly like its session and
-- its messages (the owner, or an admin of the tenant). The runtime role may only read;
-- the triggers write as the table's owner, who is bound by FORCE and the same policies,
-- so a transaction only ever writes words of its own user's sessions. Rows go away with
-- their session or message (ON DELETE CASCADE).
ALTER TABLE public.search_words ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.search_words FORCE ROW LEVEL SECURITY;

-- The tenant floor: whatever the other policies allow, never a row of another tenant.
CREATE POLICY search_words_tenant_floor ON public.search_words AS RESTRICTIVE FOR ALL TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()));

CREATE POLICY search_words_select ON public.search_words FOR SELECT TO chat_runtime, chat_migrator
    USING (
        tenant_id = (SELECT rls.tenant_id())
        AND (user_id = (SELECT rls.user_id()) OR (SELECT rls.role() = 'admin'))
    );
CREATE POLICY search_words_insert ON public.search_words FOR INSERT TO chat_runtime, chat_migrator
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY search_words_update ON public.search_words FOR UPDATE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()))
    WITH CHECK (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));
CREATE POLICY search_words_delete ON public.search_words FOR DELETE TO chat_runtime, chat_migrator
    USING (tenant_id = (SELECT rls.tenant_id()) AND user_id = (SELECT rls.user_id()));

REVOKE ALL ON public.search_words FROM PUBLIC, chat_runtime, chat_migrator;
GRANT SELECT ON public.search_words TO chat_runtime;

-- The words of a text: maximal runs of Unicode letters and digits, lower-cased, no accent
-- folding, each cut at 64 characters, distinct, in the C collation (code point order, so
-- that a prefix t is the range word >= t AND word < t with its last code point + 1, whose
-- comparisons are leakproof and use the B-tree under RLS). A C database locale knows only
-- ASCII letters: the text is read in ICU's root collation where the server has ICU, else
-- in PostgreSQL's builtin pg_unicode_fast (18) or pg_c_utf8 (17). app/sessions/search.py cuts
-- q the same way (letters: Unicode L*, digits: Nd, as ICU). The builtin collations also count
-- the few letter-like numbers (Nl, e.g. Ⅻ) as letters; pg_c_utf8 knows ASCII digits only and
-- lower-cases without special cases (a final Σ).
DO $do$
DECLARE
    chosen text := CASE
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collname = 'und-x-icu') THEN 'und-x-icu'
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collname = 'pg_unicode_fast') THEN 'pg_unicode_fast'
        WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collname = 'pg_c_utf8') THEN 'pg_c_utf8'
    END;
BEGIN
    IF chosen IS NULL THEN
        RAISE EXCEPTION 'search needs a Unicode collation: a PostgreSQL built with ICU, or PostgreSQL 17 or later';
    END IF;
    EXECUTE pg_catalog.format($f$
        CREATE OR REPLACE FUNCTION public.chat_search_words(content text) RETURNS SETOF text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
            AS $b$
                SELECT DISTINCT pg_catalog.left(w[1], 64) COLLATE "C"
                FROM pg_catalog.regexp_matches(pg_catalog.lower(content COLLATE %I), '[[:alnum:]]+', 'g') AS w
            $b$
    $f$, chosen);
END
$do$;
REVOKE ALL ON FUNCTION public.chat_search_words(text) FROM PUBLIC;

-- A session's title words: written with the session, replaced when its title changes.
CREATE OR REPLACE FUNCTION public.chat_search_title() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM public.search_words
         WHERE tenant_id = OLD.tenant_id AND session_id = OLD.session_id AND user_id = OLD.user_id
           AND message_id IS NULL;
    END IF;
    INSERT INTO public.search_words (tenant_id, user_id, session_id, message_id, word)
        SELECT NEW.tenant_id, NEW.user_id, NEW.session_id, NULL, w FROM public.chat_search_words(NEW.title) AS w;
    RETURN NULL;
END
$$;

-- A message's words, written with it (messages are not edited; they go with their session).
CREATE OR REPLACE FUNCTION public.chat_search_message() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO public.search_words (tenant_id, user_id, session_id, message_id, word)
        SELECT NEW.tenant_id, NEW.user_id, NEW.session_id, NEW.message_id, w
        FROM public.chat_search_words(NEW.content) AS w;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.chat_search_title(), public.chat_search_message() FROM PUBLIC;

CREATE OR REPLACE TRIGGER sessions_search_insert
    AFTER INSERT ON public.sessions
    FOR EACH ROW WHEN (NEW.title IS NOT NULL) EXECUTE FUNCTION public.chat_search_title();
-- The first user message titles an untitled session (messages_counters): that is such an update too.
CREATE OR REPLACE TRIGGER sessions_search_title
    AFTER UPDATE OF title ON public.sessions
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title) EXECUTE FUNCTION public.chat_search_title();
CREATE OR REPLACE TRIGGER messages_search
    AFTER INSERT ON public.messages
    FOR EACH ROW EXECUTE FUNCTION public.chat_search_message();
