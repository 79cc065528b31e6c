"""The plans of search at 100,000+ sessions: word ranges are index conditions under RLS, never a scan (EXPLAIN).

Each statement comes from ``app.sessions.search`` (``search_statement``, ``ranges_statement``),
the builders the route runs, explained as the runtime role under the request's context, so the
policies are part of the plan as in production. Rare terms are driven from their words; common
ones walk the sessions in the requested order and probe each by index.
"""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import pytest
from piccolo.querystring import QueryString

from app.db.context import set_context
from app.sessions.queries import Filters
from app.sessions.search import DRIVE_MAX, ranges_statement, search_statement
from tests.factories import TestUser, create_tenant, create_user
from tests.integration.test_query_plans import nodes

WORD_INDEXES = {"search_words_user_word_idx", "search_words_tenant_word_idx", "search_words_session_word_idx"}


async def explain(database, user: TestUser, statement: tuple[str, tuple[object, ...]]) -> dict[str, Any]:
    """The executed plan (EXPLAIN ANALYZE) of ``statement`` as the runtime role with ``user``'s context."""
    compiled, values = QueryString(statement[0], *statement[1]).compile_string()
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        async with connection.transaction():
            await set_context(connection, user.tenant_id, user.user_id)
            rows = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", *values)
    finally:
        await connection.close()
    plan: dict[str, Any] = json.loads(rows)[0]
    return plan


async def sessions_with_words(owner: asyncpg.Pool, user: TestUser, count: int, messages_each: int) -> None:
    """``count`` sessions titled 'report <i> w<i>' (w<i>: a word of one session), each message 'status <i> parcel'."""
    await owner.execute(
        """INSERT INTO sessions (tenant_id, user_id, title, created_at, updated_at)
           SELECT $1::uuid, $2::uuid, 'report ' || i || ' w' || md5($2::uuid::text || i),
                  now() - i * interval '1 minute', now() - i * interval '1 minute'
           FROM generate_series(1, $3) AS i""",
        user.tenant_id,
        user.user_id,
        count,
    )
    if messages_each:
        await owner.execute(
            """INSERT INTO messages (session_id, tenant_id, user_id, role, content)
               SELECT s.session_id, s.tenant_id, s.user_id, 'user', 'status ' || j || ' parcel ' || left(s.title, 12)
               FROM sessions s, generate_series(1, $2) AS j WHERE s.user_id = $1""",
            user.user_id,
            messages_each,
        )


@pytest.fixture(scope="module")
async def crowd(owner: asyncpg.Pool, settings) -> dict[str, TestUser]:
    """A tenant of 60,000 sessions (a supporter holds 10,000 with 2 messages each), among 50,000 other sessions."""
    tenant_id = await create_tenant(owner)
    admin = await create_user(owner, tenant_id, "admin", settings.jwt_secret)
    supporter = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
    await sessions_with_words(owner, supporter, 10_000, 2)
    for _ in range(5):
        colleague = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
        await sessions_with_words(owner, colleague, 10_000, 0)
    for _ in range(5):
        other = await create_user(owner, await create_tenant(owner), "supporter", settings.jwt_secret)
        await sessions_with_words(owner, other, 10_000, 0)
    for table in ("sessions", "messages", "users", "agent_configs", "session_counts", "search_words"):
        await owner.execute(f"VACUUM ANALYZE {table}")
    rare = await owner.fetchval(
        "SELECT substr(title, strpos(title, ' w') + 1, 9) FROM sessions WHERE user_id = $1 LIMIT 1", supporter.user_id
    )
    return {"admin": admin, "supporter": supporter, "rare": rare}


def kinds(plan: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The indexes a plan reads, and the relations it scans sequentially."""
    every = list(nodes(plan["Plan"]))
    return {n["Index Name"] for n in every if "Index Name" in n}, {
        n["Relation Name"] for n in every if n["Node Type"] == "Seq Scan"
    }


@pytest.mark.parametrize(
    ("who", "terms", "driven"),
    [
        ("supporter", ["RARE"], True),
        ("supporter", ["parcel", "status"], False),
        ("supporter", ["report"], False),
        ("supporter", ["RARE", "report"], True),
        ("admin", ["RARE"], True),
        ("admin", ["report"], False),
        ("admin", ["parcel", "status"], False),
    ],
)
async def test_search_reads_words_by_index_and_does_bounded_work(
    database, crowd, who: str, terms: list[str], driven: bool
) -> None:
    user = crowd[who]
    terms = [crowd["rare"] if t == "RARE" else t for t in terms]
    filters = Filters(user_id=crowd["supporter"].user_id if who == "supporter" else None)
    started = time.perf_counter()
    ranges = await explain(database, user, ranges_statement(user.tenant_id, filters, terms))
    indexes, seq_scans = kinds(ranges)
    assert indexes & WORD_INDEXES, indexes
    assert not seq_scans, seq_scans
    driver = crowd["rare"] if driven else None
    statement = search_statement(
        user.tenant_id, filters, terms, driver=driver, limit=20, offset=0, sort_by="updated_at", order="desc"
    )
    plan = await explain(database, user, statement)
    elapsed = (time.perf_counter() - started) * 1000
    indexes, seq_scans = kinds(plan)
    assert not seq_scans & {"sessions", "messages", "search_words"}, seq_scans
    word_scans = [n for n in nodes(plan["Plan"]) if n.get("Index Name") in WORD_INDEXES]
    # every read of search_words is a range of one word index: the prefix is an index condition
    assert word_scans
    assert all("word >=" in n.get("Index Cond", "") for n in word_scans), word_scans
    touched = sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 1) for n in word_scans)
    assert touched <= 4 * max(DRIVE_MAX, 1001 * len(terms)) + 100, touched
    print(f"\n{who} {terms} driven={driven}: {plan['Execution Time']:.1f} ms in the database, {elapsed:.0f} ms in all")
