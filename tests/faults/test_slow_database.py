"""A slow database: the pool wait is bounded (503 + Retry-After, never a hang) and statements time out cleanly.

The slowness is real: the owner holds an ACCESS EXCLUSIVE lock on ``sessions``, so every
list request blocks inside PostgreSQL while holding its pooled connection.
Figures are printed (run with ``-s``); tests never assert wall-clock times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.factories import World
from tests.polling import NO_HANG, wait_for_lock_waiters


@asynccontextmanager
async def sessions_locked(owner: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on ``sessions`` (as a migration or a VACUUM FULL would)."""
    async with owner.acquire() as connection, connection.transaction():
        await connection.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        yield


async def test_requests_beyond_a_pool_of_two_held_by_blocked_queries_get_503_and_retry_after(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    # Tenant A may take the whole pool here (DB_POOL_TENANT_MAX=2): this is about the pool itself.
    settings = {
        "pool_max_size": 2,
        "pool_min_size": 2,
        "pool_tenant_max": 2,
        "pool_timeout": 0.5,
        "statement_timeout_ms": 60_000,
    }
    async with app_with(**settings) as http, asyncio.timeout(NO_HANG):
        async with sessions_locked(owner):
            blocked = [
                asyncio.create_task(http.get(world.a.path(), headers=user.headers))
                for user in (world.a.alice, world.a.bob)
            ]
            await wait_for_lock_waiters(owner, 2)
            started = time.monotonic()
            refused = await asyncio.gather(
                *(http.get(world.b.path("me"), headers=world.b.bob.headers) for _ in range(10))
            )
            waited = time.monotonic() - started
            health = await http.get("/health")
            assert not any(task.done() for task in blocked)
        # The lock is gone: the blocked requests finish with their own rows.
        finished = await asyncio.gather(*blocked)
        after = await http.get(world.b.path("me"), headers=world.b.bob.headers)
    print(f"\npool of 2 held by 2 blocked requests: 10 more answered 503 in {waited:.2f} s (pool_timeout 0.5 s)")
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
    # Two of B's requests wait for the pool itself; the rest first wait for B's own share of it.
    details = [response.json()["detail"] for response in refused]
    assert details.count("database unavailable, retry shortly") >= 2
    assert set(details) <= {
        "database unavailable, retry shortly",
        "too many requests of this tenant at once, retry shortly",
    }
    assert health.status_code == 200
    assert [r.status_code for r in finished] == [200, 200]
    assert [r.json()["total"] for r in finished] == [3, 2]
    assert after.status_code == 200


async def test_a_statement_past_the_timeout_is_cut_and_answered_503_without_sql(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    # One pooled connection: if the cut statement kept it, the next request could not run.
    async with app_with(pool_max_size=1, pool_timeout=5.0, statement_timeout_ms=300) as http:
        async with asyncio.timeout(NO_HANG), sessions_locked(owner):
            started = time.monotonic()
            cut = await http.get(world.a.path(), headers=world.a.alice.headers)
            elapsed = time.monotonic() - started
            during = await http.get(world.a.path("me"), headers=world.a.alice.headers)
            waiting = await owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND wait_event_type = 'Lock'"
            )
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
    print(f"\nstatement timeout 300 ms: a blocked list request answered {cut.status_code} after {elapsed:.2f} s")
    assert cut.status_code == 503
    assert cut.headers["retry-after"] == "1"
    assert cut.json() == {"status_code": 503, "detail": "the database did not answer in time, retry shortly"}
    for leak in ("cancel", "statement", "SELECT", "sessions", "asyncpg"):
        assert leak not in cut.text
    assert waiting == 0  # the statement was cancelled in PostgreSQL, not only abandoned
    assert during.status_code == 200  # the connection came back to the pool
    assert after.status_code == 200
    assert after.json()["total"] == 3
