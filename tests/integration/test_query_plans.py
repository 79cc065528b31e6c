"""The plans of the queries the API sends, at 100,000+ sessions: index scans, messages never counted (EXPLAIN).

Each statement comes from the queries module's own builder (``list_statement``,
``history_statement``, ``add_statement``), the very function the route runs, and is
explained as the runtime role under the request's context, so the policies are part of
the plan exactly as in production.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from piccolo.querystring import QueryString

from app.db.context import set_context
from app.messages.queries import add_statement, history_statement
from app.messages.queries import get_many_statement as messages_get_many
from app.sessions.queries import Filters, list_statement
from app.sessions.queries import get_many_statement as sessions_get_many
from app.sessions.schemas import Order, SortBy
from tests.factories import TestUser, create_tenant, create_user

# The unique keys that find one session by its id.
KEYS = {"sessions_pkey", "sessions_tenant_session_key", "sessions_tenant_session_user_key"}


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(database, user: TestUser, statement: tuple[str, tuple[object, ...]]) -> list[dict[str, Any]]:
    """The plan of ``statement`` as the runtime role with ``user``'s context (nothing is executed)."""
    compiled, values = QueryString(statement[0], *statement[1]).compile_string()
    connection = await asyncpg.connect(database.runtime_dsn)
    try:
        async with connection.transaction():
            await set_context(connection, user.tenant_id, user.user_id)
            rows = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {compiled}", *values)
    finally:
        await connection.close()
    return list(nodes(json.loads(rows)[0]["Plan"]))


async def bulk_sessions(owner: asyncpg.Pool, user: TestUser, count: int, messages_each: int) -> None:
    await owner.execute(
        """INSERT INTO sessions (tenant_id, user_id, title, created_at, updated_at)
           SELECT $1, $2, 'bulk ' || i, now() - i * interval '1 minute', now() - i * interval '1 minute'
           FROM generate_series(1, $3) AS i""",
        user.tenant_id,
        user.user_id,
        count,
    )
    await owner.execute(
        """INSERT INTO messages (session_id, tenant_id, user_id, role, content)
           SELECT s.session_id, s.tenant_id, s.user_id, 'user', 'm' || j FROM sessions s, generate_series(1, $2) AS j
           WHERE s.user_id = $1""",
        user.user_id,
        messages_each,
    )


@pytest.fixture(scope="module")
async def crowd(owner: asyncpg.Pool, settings) -> dict[str, Any]:
    """A tenant of 1,200 + 300 sessions and a heavy user (10 sessions × 2,000 messages), among 100,000 other sessions.

    Some sessions are pinned, archived, of an agent (every 7th, 10th, 3rd), so the filters select real subsets.
    """
    tenant_id = await create_tenant(owner)
    admin = await create_user(owner, tenant_id, "admin", settings.jwt_secret)
    supporter = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
    heavy = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
    await bulk_sessions(owner, supporter, 1200, 5)
    await bulk_sessions(owner, admin, 300, 1)
    await bulk_sessions(owner, heavy, 10, 2000)
    # Many users write messages, as in production: the planner's estimate of the policies'
    # ``user_id = (SELECT rls.user_id())`` depends on how many distinct owners messages have.
    await owner.execute(
        """WITH u AS (
               INSERT INTO users (tenant_id, email, display_name, role)
               SELECT $1, 'many' || i || '@example.test', 'many ' || i, 'supporter' FROM generate_series(1, 2000) AS i
               RETURNING tenant_id, user_id
           ), s AS (
               INSERT INTO sessions (tenant_id, user_id, title) SELECT tenant_id, user_id, 'one' FROM u
               RETURNING tenant_id, session_id, user_id
           )
           INSERT INTO messages (tenant_id, session_id, user_id, role, content)
           SELECT tenant_id, session_id, user_id, 'user', 'm' || j FROM s, generate_series(1, 3) AS j""",
        tenant_id,
    )
    # Other tenants hold most of the table, as in production: 4 tenants × 50 users × 500 sessions. (One
    # user's counter row updated 25,000 times in one transaction would cost quadratic time to build.)
    for _ in range(4):
        await owner.execute(
            """WITH u AS (
                   INSERT INTO users (tenant_id, email, display_name, role)
                   SELECT $1, 'other' || i || '@example.test', 'other ' || i, 'supporter'
                   FROM generate_series(1, 50) AS i
                   RETURNING tenant_id, user_id
               )
               INSERT INTO sessions (tenant_id, user_id, title, created_at, updated_at)
               SELECT tenant_id, user_id, 'other ' || j, now() - j * interval '1 minute',
                      now() - j * interval '1 minute'
               FROM u, generate_series(1, 500) AS j""",
            await create_tenant(owner),
        )
    agent = await owner.fetchval(
        "INSERT INTO agent_configs (tenant_id, name) VALUES ($1, 'crowd agent') RETURNING agent_id", tenant_id
    )
    await owner.execute(
        """UPDATE sessions SET pinned = (title ~ '[0-9]$' AND substr(title, 6)::int % 7 = 0),
                               archived = (title ~ '[0-9]$' AND substr(title, 6)::int % 10 = 0),
                               agent_id = CASE WHEN title ~ '[0-9]$' AND substr(title, 6)::int % 3 = 0 THEN $2::uuid END
           WHERE tenant_id = $1 AND title LIKE 'bulk %'""",
        tenant_id,
        agent,
    )
    for table in ("sessions", "messages", "users", "agent_configs", "session_counts"):
        await owner.execute(f"VACUUM ANALYZE {table}")
    return {"admin": admin, "supporter": supporter, "heavy": heavy, "agent": agent}


@pytest.mark.parametrize(
    ("who", "by_user", "sort_by", "order", "limit", "offset"),
    [
        ("supporter", True, "updated_at", "desc", 10, 0),
        ("supporter", True, "created_at", "asc", 100, 1000),
        ("admin", False, "updated_at", "desc", 10, 0),
        ("admin", False, "created_at", "desc", 50, 500),
        ("admin", True, "updated_at", "asc", 10, 100),  # an admin naming the supporter
    ],
)
async def test_the_list_finds_its_page_by_index_and_never_reads_messages(
    database, crowd, who: str, by_user: bool, sort_by: str, order: str, limit: int, offset: int
) -> None:
    user = crowd[who]
    owner = crowd["supporter"].user_id if by_user else None
    statement = list_statement(
        user.tenant_id,
        Filters(user_id=owner),
        limit=limit,
        offset=offset,
        sort_by=sort_by,  # type: ignore[arg-type]
        order=order,  # type: ignore[arg-type]
    )
    plan = await explain(database, user, statement)
    relations = {n["Relation Name"] for n in plan if "Relation Name" in n}
    indexes = {n["Index Name"] for n in plan if "Index Name" in n}
    seq_scans = {n["Relation Name"] for n in plan if n["Node Type"] == "Seq Scan"}
    # The sessions are found by index (plain, index-only or bitmap); a tiny joined table such as
    # agent_configs may be read whole. messages are never read: message_count is maintained, and
    # total sums the per-user counters (one user's by its key; a whole tenant's, one row per user).
    assert "sessions" not in seq_scans, seq_scans
    assert any(name.startswith("sessions_") for name in indexes), indexes
    assert relations <= {"sessions", "session_counts", "agent_configs"}, relations
    if by_user:
        assert "session_counts_pkey" in indexes, indexes
    else:
        assert "session_counts" in relations, relations


@pytest.mark.parametrize(("who", "offset"), list(itertools.product(("heavy", "admin"), (0, 100))))
async def test_the_history_walks_the_message_index_in_order_and_stops_at_the_limit(
    database, owner: asyncpg.Pool, crowd, who: str, offset: int
) -> None:
    heavy = crowd["heavy"]
    session_id = await owner.fetchval("SELECT session_id FROM sessions WHERE user_id = $1 LIMIT 1", heavy.user_id)
    plan = await explain(database, crowd[who], history_statement(heavy.tenant_id, session_id, limit=50, offset=offset))
    scans = [n for n in plan if n.get("Relation Name") == "messages"]
    assert [n["Node Type"] for n in scans] == ["Index Scan"]
    assert scans[0]["Index Name"] == "messages_session_created_idx"
    session_scans = [n for n in plan if n.get("Relation Name") == "sessions"]
    assert [n["Node Type"] in {"Index Scan", "Index Only Scan"} for n in session_scans] == [True], session_scans
    assert session_scans[0]["Index Name"] in KEYS, session_scans
    # No sort of the whole history under the limit: the index gives the order.
    limit = next(n for n in plan if n["Node Type"] == "Limit")
    assert all(n["Node Type"] != "Sort" for n in nodes(limit))


async def test_posting_finds_the_session_by_its_key(database, owner: asyncpg.Pool, crowd) -> None:
    supporter = crowd["supporter"]
    session_id = await owner.fetchval("SELECT session_id FROM sessions WHERE user_id = $1 LIMIT 1", supporter.user_id)
    plan = await explain(
        database, supporter, add_statement(supporter.tenant_id, session_id, supporter.user_id, "user", "hi")
    )
    assert plan[0]["Node Type"] == "ModifyTable"
    session_scans = [n for n in plan if n.get("Relation Name") == "sessions"]
    assert [n["Node Type"] in {"Index Scan", "Index Only Scan"} for n in session_scans] == [True], session_scans
    assert session_scans[0]["Index Name"] in KEYS, session_scans


@pytest.mark.parametrize("who", ["supporter", "admin"])
async def test_the_live_updates_read_their_rows_by_key(database, owner: asyncpg.Pool, crowd, who: str) -> None:
    """The reads of a batch of notifications (``get_many_statement``): a key lookup per id, nothing scanned."""
    supporter = crowd["supporter"]
    sessions = await owner.fetch("SELECT session_id FROM sessions WHERE user_id = $1 LIMIT 20", supporter.user_id)
    messages = await owner.fetch("SELECT message_id FROM messages WHERE user_id = $1 LIMIT 20", supporter.user_id)
    session_ids = [r["session_id"] for r in sessions]
    message_ids = [r["message_id"] for r in messages]
    for statement, table, keys in (
        (sessions_get_many(supporter.tenant_id, session_ids), "sessions", KEYS),
        (messages_get_many(supporter.tenant_id, message_ids), "messages", {"messages_pkey"}),
    ):
        plan = await explain(database, crowd[who], statement)
        scans = [n for n in plan if n.get("Relation Name") == table]
        assert [n["Node Type"] in {"Index Scan", "Bitmap Heap Scan"} for n in scans] == [True], scans
        indexes = {n["Index Name"] for n in plan if "Index Name" in n and n["Index Name"].startswith(table)}
        assert indexes, plan
        assert indexes <= keys, indexes


FILTERS = [
    {"archived": "false"},
    {"archived": "true"},
    {"archived": "all"},
    {"archived": "false", "pinned": True},
    {"archived": "all", "pinned": False},
    {"archived": "true", "pinned": True},
    {"archived": "false", "agent": True},
    {"archived": "all", "pinned": True, "agent": True},
]


@pytest.mark.parametrize(
    ("who", "filters", "sort_by", "order", "cursor"),
    [
        (who, filters, sort_by, order, cursor)
        for who, filters in itertools.product(("supporter", "admin"), FILTERS)
        for sort_by, order, cursor in (
            ("updated_at", "desc", False),
            ("created_at", "asc", True),
            ("updated_at", "desc", True),
        )
    ],
)
async def test_filtered_and_cursor_pages_walk_an_index_in_order(
    database, owner: asyncpg.Pool, crowd, who: str, filters: dict[str, Any], sort_by: SortBy, order: Order, cursor: bool
) -> None:
    """Every filter, with and without a cursor: the page's ids come from a sessions index walked in sort order
    (no Sort of the matching rows, no sequential scan), and a cursor's position is an index condition, so a
    deep page costs what the first costs."""
    user = crowd[who]
    supporter = crowd["supporter"]
    chosen = Filters(
        user_id=supporter.user_id if who == "supporter" else None,
        archived=filters["archived"],
        pinned=filters.get("pinned"),
        agent_id=crowd["agent"] if filters.get("agent") else None,
    )
    after = None
    if cursor:  # a position deep in the supporter's sessions: the 900th by the sort
        direction = "DESC" if order == "desc" else "ASC"
        deep = await owner.fetchrow(
            f"SELECT {sort_by}, session_id FROM sessions WHERE user_id = $1 "
            f"ORDER BY {sort_by} {direction}, session_id {direction} OFFSET 900 LIMIT 1",
            supporter.user_id,
        )
        after = (deep[sort_by], deep["session_id"])
    statement = list_statement(
        user.tenant_id,
        chosen,
        limit=51,
        offset=0,
        sort_by=sort_by,
        order=order,
        after=after,
    )
    plan = await explain(database, user, statement)
    assert "sessions" not in {n["Relation Name"] for n in plan if n["Node Type"] == "Seq Scan"}
    # The page's ids: the sort's list index, or (with agent_id) the agent's index, led by archived.
    names = {f"sessions_user_{sort_by[:7]}_idx", f"sessions_tenant_{sort_by[:7]}_idx"}
    if chosen.agent_id is not None:
        names.add("sessions_tenant_agent_idx")
    limits = [n for n in plan if n["Node Type"] == "Limit"]
    under_limits = {id(n): n for limit in limits for n in nodes(limit)}.values()  # the page, not the count
    pages = [n for n in under_limits if n.get("Index Name") in names]  # (a bitmap scan names no relation)
    assert len(pages) == (2 if filters["archived"] == "all" else 1), [
        (n["Node Type"], n.get("Index Name")) for n in plan
    ]
    sorted_agent = False
    for scan in pages:
        condition = scan["Index Cond"]
        assert "archived =" in condition, condition
        if scan["Index Name"] == "sessions_tenant_agent_idx" and sort_by == "created_at":
            sorted_agent = True  # the agent's entries, sorted: bounded by that agent's sessions
            continue
        assert scan["Node Type"] == "Index Only Scan", scan
        assert scan["Scan Direction"] == ("Backward" if order == "desc" else "Forward"), scan
        if cursor:
            assert f"ROW({sort_by}, session_id)" in condition, condition
    if not sorted_agent:
        assert all(n["Node Type"] != "Sort" for limit in limits for n in nodes(limit)), "the matching rows were sorted"
    # total: the counters without agent_id, else an index-only count on (tenant_id, agent_id).
    if chosen.agent_id is None:
        assert "session_counts" in {n.get("Relation Name") for n in plan}
    else:
        assert "sessions_tenant_agent_idx" in {n.get("Index Name") for n in plan}


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_history_cursor_is_an_index_condition(database, owner: asyncpg.Pool, crowd, order: Order) -> None:
    heavy = crowd["heavy"]
    session_id = await owner.fetchval("SELECT session_id FROM sessions WHERE user_id = $1 LIMIT 1", heavy.user_id)
    deep = await owner.fetchrow(
        "SELECT created_at, message_id FROM messages WHERE session_id = $1 ORDER BY created_at, message_id OFFSET 1500",
        session_id,
    )
    statement = history_statement(
        heavy.tenant_id,
        session_id,
        limit=51,
        offset=0,
        order=order,
        after=(deep["created_at"], deep["message_id"]),
    )
    plan = await explain(database, heavy, statement)
    scans = [n for n in plan if n.get("Relation Name") == "messages"]
    assert [n["Node Type"] for n in scans] == ["Index Scan"]
    assert scans[0]["Index Name"] == "messages_session_created_idx"
    assert scans[0]["Scan Direction"] == ("Backward" if order == "desc" else "Forward")
    assert "ROW(created_at, message_id)" in scans[0]["Index Cond"], scans[0]
    limit = next(n for n in plan if n["Node Type"] == "Limit")
    assert all(n["Node Type"] != "Sort" for n in nodes(limit))
