"""Owner-level breaks, one or more per ``rls audit`` check, planted by hand on a throwaway copy.

Each plant is the SQL a DBA (or an attacker with the owner's rights) would run, and the exact
set of findings ``rls audit`` must answer with (beside the migrator warning every copy of the
test database carries: its migrator is a superuser). ``tests/security/test_audit.py`` checks
the findings; ``tests/security/test_audit_plants.py`` shows, as the runtime role, that each
break is real. In the SQL and the objects, ``{role}`` is the copy's runtime role, ``{db}`` its
database and ``{peeker}`` a role made for the plant (dropped afterwards).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.security.conftest import Throwaway


@dataclass(frozen=True)
class Plant:
    """The SQL of one break, and the (check, object) pairs the audit must report for it."""

    sql: tuple[str, ...]
    findings: frozenset[tuple[str, str]]


def plant(*sql: str, findings: set[tuple[str, str]]) -> Plant:
    """A plant from its statements and findings."""
    return Plant(tuple(sql), frozenset(findings))


PLANTS: dict[str, Plant] = {
    "rls_enabled": plant(
        "ALTER TABLE public.sessions DISABLE ROW LEVEL SECURITY",
        findings={("rls_enabled", "public.sessions")},
    ),
    # Issue 9: a tenant table whose tenant column has another name, without RLS, readable by the runtime role.
    "rls_enabled (another tenant column)": plant(
        "CREATE TABLE public.notes (note_id int PRIMARY KEY, org uuid NOT NULL, body text)",
        "GRANT SELECT ON public.notes TO chat_runtime",
        findings={
            ("rls_enabled", "public.notes"),
            ("rls_forced", "public.notes"),
            ("tenant_floor", "public.notes"),
            ("unexpected_grant", "SELECT on public.notes to chat_runtime"),
        },
    ),
    "rls_forced": plant(
        "ALTER TABLE public.messages NO FORCE ROW LEVEL SECURITY",
        findings={("rls_forced", "public.messages")},
    ),
    "tenant_floor": plant(
        "DROP POLICY messages_tenant_floor ON public.messages",
        findings={("tenant_floor", "public.messages"), ("drift", "policy public.messages.messages_tenant_floor")},
    ),
    "policy_to_public": plant(
        "ALTER POLICY messages_select ON public.messages TO PUBLIC",
        findings={
            ("policy_to_public", "public.messages.messages_select"),
            ("drift", "policy public.messages.messages_select"),
        },
    ),
    "policy_coverage": plant(
        "DROP POLICY sessions_delete ON public.sessions",
        findings={("policy_coverage", "public.sessions"), ("drift", "policy public.sessions.sessions_delete")},
    ),
    "policy_always_true": plant(
        "ALTER POLICY sessions_select ON public.sessions USING (true)",
        findings={
            ("policy_always_true", "public.sessions.sessions_select"),
            ("drift", "policy public.sessions.sessions_select"),
        },
    ),
    "unexpected_policy": plant(
        "CREATE POLICY colleagues ON public.sessions FOR SELECT TO chat_runtime"
        " USING (tenant_id = (SELECT rls.tenant_id()))",
        findings={("unexpected_policy", "public.sessions.colleagues")},
    ),
    # Issue 9: the runtime role made a member of a BYPASSRLS role (which holds the runtime grants).
    "runtime_role": plant(
        'CREATE ROLE "{peeker}" NOLOGIN BYPASSRLS',
        'GRANT chat_runtime TO "{peeker}"',
        'GRANT "{peeker}" TO "{role}"',
        findings={("runtime_role", "{peeker}")},
    ),
    # Issue 9: TEMP (a temporary table named sessions shadows the real one).
    "runtime_privileges": plant(
        'GRANT TEMPORARY ON DATABASE "{db}" TO PUBLIC',
        findings={("runtime_privileges", "database {db}: TEMPORARY")},
    ),
    "runtime_privileges (CREATE)": plant(
        "GRANT CREATE ON SCHEMA public TO chat_runtime",
        findings={("runtime_privileges", "schema public: CREATE")},
    ),
    # Issue 9: the runtime role made owner of an rls function (then rls.is_admin(), retired since).
    "ownership": plant(
        'ALTER FUNCTION rls.tenant_id() OWNER TO "{role}"',
        findings={("ownership", "function rls.tenant_id()"), ("drift", "function rls.tenant_id()")},
    ),
    "view_security_invoker": plant(
        "CREATE VIEW public.session_titles AS SELECT tenant_id, title FROM public.sessions",
        "GRANT SELECT ON public.session_titles TO chat_runtime",
        findings={("view_security_invoker", "public.session_titles")},
    ),
    "function_search_path": plant(
        "ALTER FUNCTION public.chat_message_counters() RESET search_path",
        findings={
            ("function_search_path", "public.chat_message_counters()"),
            ("drift", "function public.chat_message_counters()"),
        },
    ),
    # Issue 9: a SECURITY DEFINER function, with a pinned search_path, that returns every tenant's titles.
    "definer_executable": plant(
        "CREATE FUNCTION public.all_titles() RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER"
        " SET search_path = pg_catalog, pg_temp AS $$ SELECT title FROM public.sessions $$",
        findings={("definer_executable", "public.all_titles()")},
    ),
    # Issue 9: an operator in public that hijacks role = 'admin' (varchar = unknown) where names resolve through public.
    "catalog_shadowing": plant(
        "CREATE FUNCTION public.always_equal(varchar, varchar) RETURNS boolean LANGUAGE sql IMMUTABLE"
        " SET search_path = pg_catalog, pg_temp AS $$ SELECT true $$",
        "CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.always_equal)",
        findings={("catalog_shadowing", "public.=(character varying,character varying)")},
    ),
    # Issue 9: a trigger copying one tenant's messages into another tenant's session.
    "unexpected_trigger": plant(
        """CREATE FUNCTION public.mirror_message() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp AS $$
           BEGIN
               IF pg_catalog.pg_trigger_depth() = 1 THEN
                   INSERT INTO public.messages (tenant_id, session_id, user_id, role, content)
                   SELECT s.tenant_id, s.session_id, s.user_id, 'user', NEW.content
                   FROM public.sessions AS s WHERE s.tenant_id <> NEW.tenant_id
                   ORDER BY s.created_at LIMIT 1;
               END IF;
               RETURN NEW;
           END $$""",
        "REVOKE ALL ON FUNCTION public.mirror_message() FROM PUBLIC",
        "CREATE TRIGGER mirror AFTER INSERT ON public.messages FOR EACH ROW EXECUTE FUNCTION public.mirror_message()",
        findings={("unexpected_trigger", "public.messages.mirror")},
    ),
    # Issue 9: a RULE copying messages into a side table.
    "unexpected_rule": plant(
        "CREATE TABLE public.message_copies (tenant_id_copy uuid, content text)",
        "CREATE RULE keep_copy AS ON INSERT TO public.messages"
        " DO ALSO INSERT INTO public.message_copies VALUES (NEW.tenant_id, NEW.content)",
        findings={("unexpected_rule", "public.messages.keep_copy")},
    ),
    # Issue 9: GRANT TRUNCATE ON messages TO PUBLIC.
    "unexpected_grant": plant(
        "GRANT TRUNCATE ON public.messages, public.search_words TO PUBLIC",  # search_words references messages
        findings={
            ("unexpected_grant", "TRUNCATE on public.messages to PUBLIC"),
            ("unexpected_grant", "TRUNCATE on public.search_words to PUBLIC"),
        },
    ),
    "unexpected_grant (beyond the files)": plant(
        "GRANT UPDATE (content) ON public.messages TO chat_runtime",
        findings={("unexpected_grant", "UPDATE on public.messages(content) to chat_runtime")},
    ),
    # access_log is append-only: TRUNCATE ignores row-level security, so one context wipes every tenant's record.
    "append_only (a grant)": plant(
        "GRANT TRUNCATE ON public.access_log TO chat_runtime",
        findings={
            ("append_only", "TRUNCATE on public.access_log to chat_runtime"),
            ("unexpected_grant", "TRUNCATE on public.access_log to chat_runtime"),
        },
    ),
    "append_only (a policy)": plant(
        "GRANT UPDATE ON public.access_log TO chat_runtime",
        "CREATE POLICY access_log_rewrite ON public.access_log FOR UPDATE TO chat_runtime"
        " USING (tenant_id = (SELECT rls.tenant_id())) WITH CHECK (tenant_id = (SELECT rls.tenant_id()))",
        findings={
            ("append_only", "UPDATE on public.access_log to chat_runtime"),
            ("append_only", "public.access_log.access_log_rewrite"),
            ("unexpected_grant", "UPDATE on public.access_log to chat_runtime"),
            ("unexpected_policy", "public.access_log.access_log_rewrite"),
        },
    ),
    # A session's owner renames it, and the record of who read it is gone.
    "append_only (a trigger elsewhere)": plant(
        "CREATE FUNCTION public.forget_reads() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
        " SET search_path = pg_catalog, pg_temp AS $$ BEGIN"
        " DELETE FROM public.access_log WHERE session_id = NEW.session_id; RETURN NULL; END $$",
        "CREATE TRIGGER forget_reads AFTER UPDATE ON public.sessions FOR EACH ROW"
        " EXECUTE FUNCTION public.forget_reads()",
        findings={
            ("append_only", "trigger public.sessions.forget_reads"),
            ("unexpected_trigger", "public.sessions.forget_reads"),
        },
    ),
    # A trigger on access_log itself drops what the read path records (the read is served, unrecorded).
    "append_only (a trigger on it)": plant(
        "CREATE FUNCTION public.drop_entries() RETURNS trigger LANGUAGE plpgsql"
        " SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NULL; END $$",
        "CREATE TRIGGER drop_entries BEFORE INSERT ON public.access_log FOR EACH ROW"
        " EXECUTE FUNCTION public.drop_entries()",
        findings={
            ("append_only", "trigger public.access_log.drop_entries"),
            ("unexpected_trigger", "public.access_log.drop_entries"),
        },
    ),
    "drift": plant(
        "CREATE OR REPLACE FUNCTION rls.role() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE"
        " SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN 'admin'; END $$",
        findings={("drift", "function rls.role()")},
    ),
}


def peeker(throwaway: Throwaway) -> str:
    """The name of the role a plant may create for ``throwaway`` (cluster-wide: drop it afterwards)."""
    return f"{throwaway.role}_peeker"


def fill(text: str, throwaway: Throwaway) -> str:
    """``text`` with the placeholders of ``throwaway``."""
    database = throwaway.dsn.split("?")[0].rsplit("/", 1)[1]
    return text.replace("{role}", throwaway.role).replace("{db}", database).replace("{peeker}", peeker(throwaway))


def statements(name: str, throwaway: Throwaway) -> list[str]:
    """The SQL of plant ``name`` for ``throwaway``."""
    return [fill(sql, throwaway) for sql in PLANTS[name].sql]


def expected(name: str, throwaway: Throwaway) -> set[tuple[str, str]]:
    """The findings of plant ``name`` for ``throwaway``."""
    return {(check, fill(obj, throwaway)) for check, obj in PLANTS[name].findings}


def drop_peeker(throwaway: Throwaway) -> str:
    """SQL, run on the copy, that drops the plant's role with whatever it owns or was granted there."""
    name = peeker(throwaway).replace('"', '""')
    return f"""DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
            REASSIGN OWNED BY "{name}" TO CURRENT_USER;
            DROP OWNED BY "{name}";
            DROP ROLE "{name}";
        END IF;
    END $$"""
