"""The demo seed (``db seed``): a demo that shows the product, the same rows on every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.db.engine import use_database
from app.db.upgrade import upgrade
from app.seed import TENANTS, demo_email, demo_id, seed
from tests.conftest import TEST_JWT_SECRET
from tests.factories import make_token


async def test_every_supporter_has_a_demo_worth_showing(client: httpx.AsyncClient, seeded: None) -> None:
    for tenant in TENANTS:
        for person in ("anna", "ben"):
            user_id, tenant_id = demo_id(tenant, person), demo_id(tenant)
            headers = {"Authorization": f"Bearer {make_token(TEST_JWT_SECRET, user_id, tenant_id)}"}
            listing = (await client.get(f"/api/{tenant_id}/sessions", headers=headers, params={"limit": 100})).json()
            sessions = listing["sessions"]
            who = demo_email(tenant, person)
            assert listing["total"] == len(sessions) >= 15, who  # more than one page: "Load more" appears
            assert not any(s["archived"] for s in sessions), who  # the default list leaves archived ones out
            pinned = [s for s in sessions if s["pinned"]]
            assert len(pinned) == 2, who
            assert {s["is_active"] for s in pinned} == {True, False}, who  # one recent, one older
            archived = (
                await client.get(
                    f"/api/{tenant_id}/sessions", headers=headers, params={"limit": 100, "archived": "true"}
                )
            ).json()
            assert archived["total"] == len(archived["sessions"]) == 2, who
            assert all(s["archived"] and not s["is_active"] for s in archived["sessions"]), who
            assert len({s["agent_name"] for s in sessions}) == 4, who
            assert any(s["is_active"] for s in sessions), who
            assert not all(s["is_active"] for s in sessions), who  # some are older than 24 hours
            assert all(s["title"] for s in sessions), who  # untitled ones took their first message
            long = [s for s in sessions if s["message_count"] >= 60]
            assert len(long) == 1, who
            history = (
                await client.get(f"/api/{tenant_id}/sessions/{long[0]['session_id']}/messages", headers=headers)
            ).json()
            assert history["total"] == long[0]["message_count"]
            assert history["has_more"], who  # the history pages too
            assert [m["role"] for m in history["messages"][:2]] == ["user", "assistant"]


async def _snapshot(dsn: str, now: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the demo tables, each timestamp as its offset from ``now``."""
    connection = await asyncpg.connect(dsn)
    try:
        snapshot = {}
        for table in ("tenants", "users", "agent_configs", "sessions", "messages", "session_counts"):
            rows = await connection.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
            snapshot[table] = [tuple(v - now if isinstance(v, datetime) else v for v in row.values()) for row in rows]
        return snapshot
    finally:
        await connection.close()


async def test_the_seed_writes_the_same_rows_on_every_run(fresh_database) -> None:
    await upgrade(fresh_database.owner_dsn, fresh_database.runtime_dsn)
    engine = use_database(fresh_database.owner_dsn)
    first_now = datetime(2025, 11, 5, 10, 30, 17, 123456, tzinfo=UTC)
    assert (await seed(first_now))["sessions"] > 0
    first = await _snapshot(fresh_database.owner_dsn, first_now.replace(second=0, microsecond=0))
    assert sum(map(len, first.values())) > 0

    assert set((await seed(first_now + timedelta(days=3))).values()) == {0}  # seeding again adds nothing ...
    assert (
        await _snapshot(fresh_database.owner_dsn, first_now.replace(second=0, microsecond=0)) == first
    )  # ... nor changes

    # Another run on an empty database, at another moment: the same rows, the same offsets from it.
    async with engine.transaction():
        await engine.run_ddl(
            "TRUNCATE tenants, users, agent_configs, sessions, messages, session_counts, search_words, access_log"
        )
    later = first_now + timedelta(days=40, hours=5, minutes=13, seconds=50)
    await seed(later)
    assert await _snapshot(fresh_database.owner_dsn, later.replace(second=0, microsecond=0)) == first
