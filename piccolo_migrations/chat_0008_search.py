"""search_words: the words of every title and message, for search (``q``) under row-level security.

Under RLS a query qual that is not LEAKPROOF runs after the policy quals, so it can not be an
index condition: ``tsvector @@ tsquery``, trigram ``LIKE`` and array ``&&`` would scan every
readable row. The comparisons of ``text`` in the C collation are leakproof, so a word prefix
``t`` is searched as the B-tree range ``word >= t AND word < t_next``. A row per distinct
word of a title (``message_id`` NULL) or of a message, with the owner's ``tenant_id`` and
``user_id`` on the row so its policies compare its own columns, like the messages'.

Words are maximal runs of Unicode letters and digits, lower-cased, at most 64 characters.
A C database locale knows only ASCII letters, so the tokenizer names a Unicode collation:
ICU's root (``und-x-icu``) where the server has ICU, else PostgreSQL's builtin
``pg_unicode_fast`` (18) or ``pg_c_utf8`` (17). The tokenizer made here is history:
``db upgrade`` maintains it, with the table's policies and the triggers that keep the table,
in its policy step. Existing titles and messages are filled in, with FORCE ROW LEVEL
SECURITY lifted inside this migration's transaction.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "search_words: the words of titles and messages, B-tree indexed, for search under RLS"

SQL = r"""
CREATE TABLE search_words (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    session_id uuid NOT NULL,
    message_id uuid,
    word text COLLATE "C" NOT NULL,
    CONSTRAINT search_words_session_fk FOREIGN KEY (tenant_id, session_id, user_id)
        REFERENCES sessions (tenant_id, session_id, user_id) ON DELETE CASCADE,
    CONSTRAINT search_words_message_fk FOREIGN KEY (message_id)
        REFERENCES messages (message_id) ON DELETE CASCADE
);
CREATE INDEX search_words_user_word_idx ON search_words (tenant_id, user_id, word) INCLUDE (session_id, message_id);
CREATE INDEX search_words_tenant_word_idx ON search_words (tenant_id, word) INCLUDE (user_id, session_id, message_id);
CREATE INDEX search_words_session_word_idx ON search_words (session_id, word) INCLUDE (message_id, tenant_id, user_id);
CREATE INDEX search_words_message_idx ON search_words (message_id) WHERE message_id IS NOT NULL;

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
        CREATE FUNCTION public.chat_search_words(content text) RETURNS SETOF text
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
            AS $b$
                SELECT DISTINCT pg_catalog.left(w[1], 64) COLLATE "C"
                FROM pg_catalog.regexp_matches(pg_catalog.lower(content COLLATE %I), '[[:alnum:]]+', 'g') AS w
            $b$
    $f$, chosen);
END
$do$;

ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE messages NO FORCE ROW LEVEL SECURITY;
INSERT INTO search_words (tenant_id, user_id, session_id, message_id, word)
    SELECT s.tenant_id, s.user_id, s.session_id, NULL, w
    FROM sessions AS s, public.chat_search_words(s.title) AS w;
INSERT INTO search_words (tenant_id, user_id, session_id, message_id, word)
    SELECT m.tenant_id, m.user_id, m.session_id, m.message_id, w
    FROM messages AS m, public.chat_search_words(m.content) AS w;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
"""


async def run_sql(sql: str) -> None:
    """Execute ``sql`` (several statements) on the migration's own transaction."""
    transaction = engine_finder().current_transaction.get()
    await transaction.connection.execute(sql)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="chat", description=DESCRIPTION)

    async def run() -> None:
        await run_sql(SQL)

    manager.add_raw(run)
    return manager
