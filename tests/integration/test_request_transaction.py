"""The request's transaction: context visible everywhere in the request, always closed, never leaked."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide

from app.db.engine import get_engine
from app.tables import Session
from app.users.schemas import UserInfo
from tests.factories import World

if TYPE_CHECKING:
    from tests.conftest import TestDatabase


async def _context() -> dict[str, str]:
    rows = await Session.raw(
        "SELECT current_setting('app.tenant_id', true) AS tenant, current_setting('app.user_id', true) AS user_id"
    )
    return {"tenant": rows[0]["tenant"], "user": rows[0]["user_id"]}


async def _context_again() -> dict[str, str]:
    return await _context()


async def _visible_sessions() -> int:
    rows = await Session.raw("SELECT count(*) AS n FROM sessions")
    return int(rows[0]["n"])


class ProbeController(Controller):
    """Test-only routes mounted under /api/{tenant_id} with the real guard and transaction."""

    path = "/probe"
    dependencies = {
        "first": Provide(_context),
        "second": Provide(_context_again),
        "third": Provide(_visible_sessions),
    }

    @get("/deps")
    async def deps(
        self,
        first: NamedDependency[dict[str, str]],
        second: NamedDependency[dict[str, str]],
        third: NamedDependency[int],
    ) -> dict[str, Any]:
        return {"first": first, "second": second, "sessions": third, "handler": await _context()}

    @post("/fail")
    async def fail(self, user: NamedDependency[UserInfo]) -> None:
        await Session.insert(Session(tenant_id=user.tenant_id, user_id=user.user_id, title="must roll back"))
        raise RuntimeError("handler failed after writing")

    @get("/hold")
    async def hold(self) -> int:
        await Session.raw("SELECT pg_sleep(0.5)")
        return await _visible_sessions()

    @post("/die", status_code=200)
    async def die(self) -> None:
        # The request's connection dies after the handler's last query, so COMMIT fails.
        pid = (await Session.raw("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        async with get_engine().connections.acquire() as other:
            await other.execute("SELECT pg_terminate_backend($1)", pid)

    @post("/deferred-violation", status_code=200)
    async def deferred_violation(self) -> None:
        # A deferred constraint fails at COMMIT on a healthy connection (table: the deferred_table fixture).
        await Session.raw("INSERT INTO probe_deferred VALUES (1), (1)")

    @post("/die-and-raise")
    async def die_and_raise(self) -> None:
        try:
            await Session.raw("SELECT pg_terminate_backend(pg_backend_pid())")
        finally:
            raise RuntimeError("handler failed with a dead connection")

    @get("/outside")
    async def outside(self) -> int:
        # A query in another task context (as .run_sync() or a detached task would be) has no transaction.
        return await asyncio.get_running_loop().create_task(_visible_sessions(), context=contextvars.Context())


async def test_several_dependencies_and_the_handler_all_see_the_context(app_with, world: World) -> None:
    async with app_with(handlers=(ProbeController,)) as http:
        response = await http.get(world.a.path("probe/deps"), headers=world.a.alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = {"tenant": str(world.a.tenant_id), "user": str(world.a.alice.user_id)}
    assert body["first"] == body["second"] == body["handler"] == expected
    assert body["sessions"] == 3  # alice's sessions, through RLS


async def test_a_raising_handler_rolls_back_and_a_pool_of_two_survives_100_failures(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    async with app_with(handlers=(ProbeController,), pool_max_size=2, pool_timeout=2.0) as http:
        for _ in range(100):
            response = await http.post(world.a.path("probe/fail"), headers=world.a.alice.headers)
            assert response.status_code == 500
            assert "handler failed" not in response.text  # no internals in the body
        assert await owner.fetchval("SELECT count(*) FROM sessions WHERE title = 'must roll back'") == 0
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
        assert after.status_code == 200
        assert after.json()["total"] == 3


async def test_a_query_outside_the_request_transaction_fails_loudly(app_with, world: World) -> None:
    async with app_with(handlers=(ProbeController,)) as http:
        response = await http.get(world.a.path("probe/outside"), headers=world.a.alice.headers)
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}


async def test_the_context_is_gone_when_the_connection_is_reused(app_with, world: World) -> None:
    # Pool of one: every request reuses the same connection. A later request of another
    # tenant sees its own context only, never the previous request's.
    async with app_with(handlers=(ProbeController,), pool_max_size=1, pool_min_size=1) as http:
        for tenant, user in ((world.a, world.a.alice), (world.b, world.b.bob), (world.a, world.a.admin)):
            body = (await http.get(tenant.path("probe/deps"), headers=user.headers)).json()
            assert body["handler"] == {"tenant": str(tenant.tenant_id), "user": str(user.user_id)}


async def test_interleaved_requests_of_two_tenants_through_a_pool_of_two_see_no_foreign_row(
    app_with, world: World
) -> None:
    callers = [
        (world.a, world.a.alice),
        (world.a, world.a.admin),
        (world.b, world.b.bob),
        (world.b, world.b.admin),
    ]
    own = {
        (tenant.tenant_id, user.user_id): (
            tenant.all_session_ids if user.role == "admin" else set(tenant.sessions[user.user_id])
        )
        for tenant, user in callers
    }
    async with app_with(pool_max_size=2, pool_timeout=30.0) as http:

        async def call(index: int) -> tuple[Any, Any, set[uuid.UUID]]:
            tenant, user = callers[index % len(callers)]
            response = await http.get(tenant.path(), headers=user.headers, params={"limit": 100})
            assert response.status_code == 200, response.text
            return tenant, user, {uuid.UUID(s["session_id"]) for s in response.json()["sessions"]}

        for _ in range(4):  # 4 rounds × 64 concurrent requests
            results = await asyncio.gather(*(call(i) for i in range(64)))
            for tenant, user, seen in results:
                assert seen == own[(tenant.tenant_id, user.user_id)]


async def _wait_for_sleepers(owner: asyncpg.Pool, count: int) -> None:
    """Poll until ``count`` API connections run ``pg_sleep`` (the probe/hold handler), within 10 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    query = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND query LIKE '%pg_sleep%'"
    while await owner.fetchval(query) < count:
        assert loop.time() < deadline, f"fewer than {count} requests are holding a connection"
        await asyncio.sleep(0.01)


async def test_no_pool_connection_within_the_bounded_wait_is_a_503_with_retry_after(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    async with app_with(handlers=(ProbeController,), pool_max_size=1, pool_timeout=0.1) as http:
        holding = asyncio.create_task(http.get(world.a.path("probe/hold"), headers=world.a.alice.headers))
        await _wait_for_sleepers(owner, 1)
        refused = await http.get(world.b.path(), headers=world.b.bob.headers)  # another tenant: the pool itself
        assert (await holding).status_code == 200
        after = await http.get(world.b.path(), headers=world.b.bob.headers)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"status_code": 503, "detail": "database unavailable, retry shortly"}
    assert after.status_code == 200


async def test_a_tenant_holds_at_most_its_share_of_the_pool_and_the_others_are_served(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    async with app_with(handlers=(ProbeController,), pool_max_size=4, pool_timeout=0.3, pool_tenant_max=2) as http:
        holding = [
            asyncio.create_task(http.get(world.a.path("probe/hold"), headers=world.a.alice.headers)) for _ in range(2)
        ]
        await _wait_for_sleepers(owner, 2)
        # A third request of tenant A waits for A's share, then gives up: 503, while B is served at once.
        busy, other = await asyncio.gather(
            http.get(world.a.path(), headers=world.a.bob.headers),
            http.get(world.b.path(), headers=world.b.alice.headers),
        )
        assert [(await h).status_code for h in holding] == [200, 200]
        after = await http.get(world.a.path(), headers=world.a.bob.headers)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json() == {"status_code": 503, "detail": "too many requests of this tenant at once, retry shortly"}
    assert other.status_code == 200
    assert after.status_code == 200


async def test_dead_pooled_connections_give_at_most_one_503_then_the_pool_recovers(
    app_with, world: World, owner: asyncpg.Pool
) -> None:
    async with app_with(pool_max_size=1, pool_min_size=1) as http:
        assert (await http.get(world.a.path(), headers=world.a.alice.headers)).status_code == 200
        # Kill the API's idle pooled connections, as a database restart would.
        killed = await owner.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = 'chat_app' AND application_name = 'chat-sessions-api') AS t"
        )
        statuses = [(await http.get(world.a.path(), headers=world.a.alice.headers)).status_code for _ in range(3)]
    assert killed == 1
    # The dead connection fails the request that takes it (503) unless asyncpg saw it close first;
    # either way the pool replaces it and every later request is served.
    assert statuses in ([503, 200, 200], [200, 200, 200])


@pytest.fixture
async def deferred_table(owner: asyncpg.Pool) -> AsyncIterator[None]:
    """A table whose constraint is checked at COMMIT, writable by the runtime role (dropped afterwards)."""
    await owner.execute(
        "CREATE TABLE probe_deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED); "
        "GRANT INSERT ON probe_deferred TO chat_runtime"
    )
    yield
    await owner.execute("DROP TABLE probe_deferred")


@pytest.mark.usefixtures("deferred_table")
async def test_a_failed_commit_is_answered_500_not_the_handlers_success(app_with, world: World) -> None:
    async with app_with(handlers=(ProbeController,), pool_max_size=2) as http:
        refused = await http.post(world.a.path("probe/deferred-violation"), headers=world.a.alice.headers)
        assert refused.status_code == 500
        assert refused.json() == {"status_code": 500, "detail": "the change could not be saved"}
        # The connection died before COMMIT: an outage like any other, 503 + Retry-After.
        died = await http.post(world.a.path("probe/die"), headers=world.a.alice.headers)
        assert died.status_code == 503
        assert died.headers["retry-after"] == "1"
        assert died.json() == {"status_code": 503, "detail": "database unavailable, retry shortly"}
        raised = await http.post(world.a.path("probe/die-and-raise"), headers=world.a.alice.headers)
        assert raised.status_code == 500
        # The single pooled connection was replaced: the app still answers.
        assert (await http.get(world.a.path(), headers=world.a.alice.headers)).status_code == 200


def test_the_engine_says_when_its_pool_is_not_running(database: TestDatabase) -> None:
    from app.db.engine import TenantEngine

    # A reachable server: Piccolo looks up the server version of a new engine in the background.
    engine = TenantEngine(config={"dsn": database.owner_dsn})
    with pytest.raises(RuntimeError, match="pool is not running"):
        _ = engine.connections


async def test_a_cancelled_request_returns_its_connection(app_with, world: World) -> None:
    # The client goes away (or the server cancels the task) while the handler holds the transaction.
    async with app_with(handlers=(ProbeController,), pool_max_size=1, pool_timeout=2.0) as http:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(http.get(world.a.path("probe/hold"), headers=world.a.alice.headers), 0.1)
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
    assert after.status_code == 200


async def test_a_body_over_a_mebibyte_is_answered_413_without_a_connection(app_with, world: World) -> None:
    async with app_with(pool_max_size=1) as http:
        refused = await http.post(
            world.a.path(),
            headers={**world.a.alice.headers, "content-type": "application/json"},
            content=b" " * (2**20 + 1),
        )
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
    assert refused.status_code == 413
    assert refused.json() == {"status_code": 413, "detail": "request body larger than 1048576 bytes"}
    assert after.status_code == 200
