"""The list query's plan at 1,000+ sessions: index scans on sessions, messages never read (EXPLAIN, not timing)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
from piccolo.querystring import QueryString

from app.sessions.queries import _count_sql, _page_sql
from tests.factories import TestUser, create_tenant, create_user, set_context


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def explain(database, user: TestUser, sql: str, *args: Any) -> list[dict[str, Any]]:
    compiled, values = QueryString(sql, *args).compile_string()
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
        """INSERT INTO messages (session_id, tenant_id, role, content)
           SELECT s.session_id, s.tenant_id, 'user', 'm' || j FROM sessions s, generate_series(1, $2) AS j
           WHERE s.user_id = $1""",
        user.user_id,
        messages_each,
    )


async def test_list_plans_use_the_session_indexes_and_never_touch_messages(owner, database, settings) -> None:
    tenant_id = await create_tenant(owner)
    admin = await create_user(owner, tenant_id, "admin", settings.jwt_secret)
    supporter = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
    await bulk_sessions(owner, supporter, 1200, 5)
    await bulk_sessions(owner, admin, 300, 1)
    # Other tenants hold most of the table, as in production.
    for _ in range(3):
        other = await create_user(owner, await create_tenant(owner), "supporter", settings.jwt_secret)
        await bulk_sessions(owner, other, 5000, 0)
    for table in ("sessions", "messages", "users", "agent_configs"):
        await owner.execute(f"VACUUM ANALYZE {table}")

    cases = [
        (supporter, _page_sql(True, "updated_at", "desc"), (tenant_id, supporter.user_id, 10, 0)),
        (supporter, _page_sql(True, "created_at", "asc"), (tenant_id, supporter.user_id, 100, 1000)),
        (admin, _page_sql(False, "updated_at", "desc"), (tenant_id, 10, 0)),
        (admin, _page_sql(False, "created_at", "desc"), (tenant_id, 50, 500)),
    ]
    for user, sql, args in cases:
        plan = await explain(database, user, sql, *args)
        relations = {n["Relation Name"] for n in plan if "Relation Name" in n}
        indexes = {n["Index Name"] for n in plan if "Index Name" in n}
        seq_scans = {n["Relation Name"] for n in plan if n["Node Type"] == "Seq Scan"}
        # The sessions are found by index (plain, index-only or bitmap); a tiny joined table such as
        # agent_configs may be read whole. messages are never read: message_count is maintained.
        assert "sessions" in relations, (sql, relations)
        assert "sessions" not in seq_scans, (args, sql[-60:])
        assert any(name.startswith("sessions_") for name in indexes), (sql, indexes)
        assert "messages" not in relations, (sql, relations)

    # total: read from the per-user counters by their key, never by counting sessions.
    for user, sql, args in (
        (supporter, _count_sql(True), (tenant_id, supporter.user_id)),
        (admin, _count_sql(False), (tenant_id,)),
    ):
        plan = await explain(database, user, sql, *args)
        relations = {n["Relation Name"] for n in plan if "Relation Name" in n}
        assert relations <= {"session_counts", "users"}, (sql, relations)
        assert "session_counts" in relations, (sql, relations)


async def test_history_page_walks_the_message_index_in_order_and_stops_at_the_limit(owner, database, settings) -> None:
    from app.messages.queries import _PAGE_SQL

    tenant_id = await create_tenant(owner)
    admin = await create_user(owner, tenant_id, "admin", settings.jwt_secret)
    supporter = await create_user(owner, tenant_id, "supporter", settings.jwt_secret)
    await bulk_sessions(owner, supporter, 20, 500)
    session_id = await owner.fetchval("SELECT session_id FROM sessions WHERE user_id = $1 LIMIT 1", supporter.user_id)
    await owner.execute("ANALYZE sessions; ANALYZE messages")
    for user, offset in itertools.product((supporter, admin), (0, 100)):
        plan = await explain(database, user, _PAGE_SQL, tenant_id, session_id, 50, offset, tenant_id, session_id)
        scans = [n for n in plan if n.get("Relation Name") == "messages"]
        assert [n["Node Type"] for n in scans] == ["Index Scan"], (user.role, offset)
        assert scans[0]["Index Name"] == "messages_session_created_idx"
        # No sort of the whole history under the limit: the index gives the order.
        limit = next(n for n in plan if n["Node Type"] == "Limit")
        assert all(n["Node Type"] != "Sort" for n in nodes(limit)), (user.role, offset)
