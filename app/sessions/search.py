"""Search (``q``): sessions whose title, or one single message, has every term as a word prefix.

The words live in ``search_words`` (rls_policies/search_words.sql), one row per distinct
word of a title or message, read under the same policies as the sessions and messages. A
term ``t`` is the B-tree range ``word >= t AND word < t_next`` in the C collation: those
comparisons are leakproof, so they stay index conditions under RLS (``@@``, ``LIKE`` and
``&&`` would not). Two plans, chosen by how many words each term's range holds (capped):

- *driven*: a term with at most ``DRIVE_MAX`` words names every candidate session; each is
  checked for all terms in one unit (its title or one message), then sorted and paged;
- *walk*: every term is common, so the sessions are walked in the requested order and each
  is probed by index until the page (and the count, up to ``TOTAL_MAX``) is full.

Either way the work is bounded by ``DRIVE_MAX`` words or ``TOTAL_MAX`` matches, not by the
tenant's size.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache
from uuid import UUID

import msgspec

from app.cursors import Position
from app.inputs import NUL_WORDS, invalid
from app.sessions.queries import ACTIVE_WINDOW, Filters, Statement, _shape, _statement, ids_sql, keyset_sql
from app.sessions.schemas import Order, SessionInfo, SessionListResponse, SortBy
from app.tables import Session

Q_MAX = 200  # characters of q, after trimming
TERMS_MAX = 32  # terms of one q: each is a probe, more would be a 400
WORD_MAX = 64  # characters of a word that are indexed (rls_policies/search_words.sql cuts words the same way)
TOTAL_MAX = 1000  # matches counted exactly; beyond, total is TOTAL_MAX and total_capped is true
DRIVE_MAX = 2000  # the most words of one term that the driven plan reads
SNIPPET_MAX = 200
SNIPPET_BEFORE = 40  # characters of context before the first matched word
_SPACE = re.compile(r"\s+")


def _is_word_char(char: str) -> bool:
    """A Unicode letter or decimal digit (ICU's ``u_isalnum``, what the database's tokenizer uses)."""
    category = unicodedata.category(char)
    return category[0] == "L" or category == "Nd"


def words_with_positions(text: str) -> list[tuple[int, str]]:
    """The words of ``text`` (maximal runs of letters and digits), lower-cased, with where each starts."""
    found: list[tuple[int, str]] = []
    start = -1
    for index, char in enumerate(text + " "):
        if _is_word_char(char):
            start = index if start < 0 else start
        elif start >= 0:
            found.append((start, text[start:index].lower()))
            start = -1
    return found


def terms_of(q: str) -> list[str]:
    """The search terms of ``q``: its words cut at ``WORD_MAX``, without those a longer term starts with.

    A term that begins another term matches whatever that one matches, so it adds nothing.
    """
    words = sorted({word[:WORD_MAX] for _, word in words_with_positions(q.lower())}, key=len, reverse=True)
    terms: list[str] = []
    for word in words:
        if not any(term.startswith(word) for term in terms):
            terms.append(word)
    return sorted(terms)


def parse_q(q: str) -> list[str]:
    """The terms of the query parameter ``q``; a 400 naming ``q`` when it is blank, too long, without a term
    or with more than ``TERMS_MAX``."""
    text = q.strip()
    if "\x00" in text:
        raise invalid("q", NUL_WORDS, "query")
    if not text:
        raise invalid("q", "must not be blank", "query")
    if len(text) > Q_MAX:
        raise invalid("q", f"must be at most {Q_MAX} characters", "query")
    terms = terms_of(text)
    if not terms:
        raise invalid("q", "must contain a word: a letter or a digit", "query")
    if len(terms) > TERMS_MAX:
        raise invalid("q", f"must have at most {TERMS_MAX} different words", "query")
    return terms


def _after(term: str) -> str:
    """The smallest string greater than every string ``term`` begins: its last code point + 1.

    A term ends with a letter or digit, never with U+D7FF (unassigned), so + 1 is never a surrogate."""
    return term[:-1] + chr(ord(term[-1]) + 1)


def _unit_match(session: str, count: int) -> str:
    """The units of ``session`` (its title: ``message_id`` NULL, or one message) holding a word of every term.

    Those of the first term's words, each checked for the other terms by a probe of the same index.
    OFFSET 0 keeps the whole a probe per session: never turned into a join that reads every word of a term."""
    others = "".join(
        f"""
            AND EXISTS (
                SELECT 1 FROM search_words w{i}
                WHERE w{i}.session_id = {session} AND w{i}.word >= ($lo::text[])[{i + 1}]
                  AND w{i}.word < ($hi::text[])[{i + 1}] AND w{i}.message_id IS NOT DISTINCT FROM w0.message_id
            )"""
        for i in range(1, count)
    )
    return f"""
        SELECT w0.message_id FROM search_words w0
        WHERE w0.session_id = {session} AND w0.word >= ($lo::text[])[1] AND w0.word < ($hi::text[])[1]{others}
        OFFSET 0
    """


def _owner(filters: Filters) -> str:
    """The words of the sessions of the filters' owner (the tenant's, or one user's)."""
    return "w.tenant_id = $tenant" + (" AND w.user_id = $user" if filters.user_id is not None else "")


def _archived(filters: Filters) -> str:
    return "" if filters.archived == "all" else f" AND archived = {filters.archived}"


# The page's sessions with their agent and the text the snippet is cut from: the first message
# (oldest) holding every term, else the title. An admin's hit on another user's session quotes it:
# recorded (``chat_record_read``, action ``search``; rls_policies/access_log.sql).
_PAGE_INFO = f"""
    SELECT p.session_id, p.user_id, p.title, a.name AS agent_name,
           p.created_at, p.updated_at, p.message_count,
           coalesce(p.last_message_at, p.created_at) > now() - {ACTIVE_WINDOW} AS is_active,
           p.pinned, p.archived, coalesce(unit.content, p.title) AS snippet_source
    FROM page_ids CROSS JOIN LATERAL (
        SELECT * FROM sessions p WHERE p.session_id = page_ids.session_id AND p.tenant_id = $tenant
          AND chat_record_read(p.tenant_id, p.session_id, p.user_id, 'search') OFFSET 0
    ) p
    LEFT JOIN agent_configs a ON a.agent_id = p.agent_id
    LEFT JOIN LATERAL (
        SELECT m.content FROM ({{match}}) hit LEFT JOIN messages m ON m.message_id = hit.message_id
        ORDER BY m.created_at NULLS LAST, m.message_id LIMIT 1
    ) unit ON true
"""


@cache
def _search_sql(filters: Filters, driven: bool, count: int, sort_by: SortBy, order: Order, after: bool) -> str:
    """The search: the capped count and the page in one round trip (one row per page session, or one row
    of ``total`` alone). The count ignores the cursor (it is the search's, not the rest's)."""
    direction = "DESC" if order == "desc" else "ASC"
    sort = f"{sort_by} {direction}, session_id {direction}"
    keyset = keyset_sql(sort_by, order) if after else ""
    where = filters.where() + _archived(filters)
    if driven:
        verify = f"WHERE EXISTS ({_unit_match('c.session_id', count)})" if count > 1 else ""
        hits = f"""
            candidates AS (
                SELECT DISTINCT w.session_id FROM search_words w
                WHERE {_owner(filters)} AND w.word >= $driver AND w.word < $driver_next
            ), verified AS MATERIALIZED (
                SELECT c.session_id FROM candidates c {verify}
            ), hits AS (  -- each by its primary key (a lateral subquery the planner can't turn into a scan)
                SELECT s.* FROM verified v CROSS JOIN LATERAL (
                    SELECT session_id, {sort_by} FROM sessions WHERE session_id = v.session_id AND {where} OFFSET 0
                ) s
            ), counted AS (SELECT count(*) AS total FROM (SELECT 1 FROM hits LIMIT {TOTAL_MAX + 1}) x),
            page_ids AS (
                SELECT session_id, {sort_by} FROM hits WHERE true{keyset} ORDER BY {sort} LIMIT $limit OFFSET $offset
            )
        """
    else:
        # In the requested order on the list's index, each session probed (app/sessions/queries.py).
        match = f"EXISTS ({_unit_match('sessions.session_id', count)})"
        ids = ids_sql(filters, sort_by, order, after, f" AND {match}")
        hits = f"""
            counted AS (
                SELECT count(*) AS total
                FROM (SELECT 1 FROM sessions WHERE {where} AND {match} LIMIT {TOTAL_MAX + 1}) x
            ), page_ids AS ({ids})
        """
    return f"""
        WITH {hits}
        SELECT counted.total, l.*
        FROM counted LEFT JOIN ({_PAGE_INFO.format(match=_unit_match("p.session_id", count))}) l ON true
        ORDER BY l.{sort}
    """


# How many words each term's range holds, up to DRIVE_MAX + 1 (an index-only count per term).
_RANGES_SQL = """
    SELECT (SELECT count(*) FROM (
               SELECT 1 FROM search_words w WHERE {owner} AND w.word >= t.lo AND w.word < t.hi LIMIT {cap}
           ) x) AS words
    FROM unnest($lo::text[], $hi::text[]) WITH ORDINALITY AS t(lo, hi, i)
    ORDER BY t.i
"""


def ranges_statement(tenant_id: UUID, filters: Filters, terms: list[str]) -> Statement:
    """The count of each term's words (capped), as ``search_sessions`` sends it to choose its plan."""
    sql = _RANGES_SQL.format(owner=_owner(filters), cap=DRIVE_MAX + 1)
    values: dict[str, object] = {
        "tenant": tenant_id,
        "user": filters.user_id,
        "lo": terms,
        "hi": [_after(t) for t in terms],
    }
    return _statement(sql, values)


def search_statement(
    tenant_id: UUID,
    filters: Filters,
    terms: list[str],
    *,
    driver: str | None,
    limit: int,
    offset: int,
    sort_by: SortBy,
    order: Order,
    after: Position | None = None,
) -> Statement:
    """The search query exactly as ``search_sessions`` sends it: driven by the term ``driver``, or a walk (None).

    It asks for ``limit`` rows; ``search_sessions`` asks for one more, to know whether a next page exists."""
    template = _search_sql(_shape(filters), driver is not None, len(terms), sort_by, order, after is not None)
    values: dict[str, object] = {
        "tenant": tenant_id,
        "user": filters.user_id,
        "agent": filters.agent_id,
        "lo": terms,
        "hi": [_after(t) for t in terms],
        "driver": driver,
        "driver_next": _after(driver) if driver is not None else None,
        "limit": limit,
        "offset": offset,
        "window": limit + offset,
        "after_key": after[0] if after else None,
        "after_id": after[1] if after else None,
    }
    return _statement(template, values)


def snippet(text: str, terms: list[str]) -> str:
    """At most ``SNIPPET_MAX`` characters of ``text`` (whitespace collapsed) around its first word a term begins."""
    flat = _SPACE.sub(" ", text).strip()
    first = next((at for at, word in words_with_positions(flat) if any(word.startswith(t) for t in terms)), 0)
    start = max(0, first - SNIPPET_BEFORE)
    head = "…" if start > 0 else ""
    body = flat[start : start + SNIPPET_MAX - len(head)]
    if start + len(body) < len(flat):
        body = body[:-1] + "…"
    return head + body


def driver_of(terms: list[str], words: list[int]) -> str | None:
    """The term to drive from, given each term's count of words (``ranges_statement``): the rarest one
    when it holds at most ``DRIVE_MAX`` words, else None (walk the sessions)."""
    fewest = min(range(len(terms)), key=words.__getitem__)
    return terms[fewest] if words[fewest] <= DRIVE_MAX else None


async def search_sessions(
    tenant_id: UUID,
    filters: Filters,
    terms: list[str],
    *,
    limit: int,
    offset: int = 0,
    sort_by: SortBy = "updated_at",
    order: Order = "desc",
    after: Position | None = None,
    cursor_of: Callable[[Position], str],
) -> SessionListResponse:
    """A page of the sessions ``filters`` select that match every term, each with its snippet.

    ``total`` is exact up to ``TOTAL_MAX``; beyond, ``total_capped``. ``has_more`` is whether
    another page exists (``next_cursor`` is set), which an exact total would also say."""
    sql, args = ranges_statement(tenant_id, filters, terms)
    driver = driver_of(terms, [int(row["words"]) for row in await Session.raw(sql, *args)])
    sql, args = search_statement(
        tenant_id,
        filters,
        terms,
        driver=driver,
        limit=limit + 1,
        offset=offset,
        sort_by=sort_by,
        order=order,
        after=after,
    )
    rows = await Session.raw(sql, *args)
    counted = int(rows[0]["total"])
    found = [row for row in rows if row["session_id"] is not None]
    for row in found:
        row["snippet"] = snippet(row.pop("snippet_source"), terms)
    sessions = msgspec.convert(found[:limit], list[SessionInfo])
    last = sessions[-1] if sessions else None
    next_cursor = cursor_of((getattr(last, sort_by), last.session_id)) if last and len(found) > limit else None
    return SessionListResponse(
        sessions=sessions,
        total=min(counted, TOTAL_MAX),
        limit=limit,
        offset=offset,
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
        total_capped=counted > TOTAL_MAX,
    )
