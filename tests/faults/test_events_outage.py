"""The database restarts while streams are open: the streams end, the listener recovers by itself, new streams work.

A real ``python -m app serve`` with two workers on a dedicated embedded PostgreSQL (the
fixture of test_database_down.py), stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx

from tests.faults.test_database_down import Dedicated, dedicated  # noqa: F401 - the fixture
from tests.live import live_server
from tests.polling import until
from tests.sse import EventStream, stream


async def test_a_database_restart_ends_the_streams_and_the_listener_recovers(dedicated: Dedicated) -> None:  # noqa: F811
    settings, world = dedicated.settings, dedicated.world
    env = {
        "DATABASE_URL": settings.database_url or "",
        "APP_DATABASE_URL": settings.runtime_database_url,
        "JWT_SECRET": settings.jwt_secret or "",
        "EVENTS_KEEPALIVE_SECONDS": "1",
        "DB_POOL_TIMEOUT": "2",
    }
    tenant, alice = world.a, world.a.alice
    with live_server(env, "--workers", "2") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http, AsyncExitStack() as stack:
            before = [
                await stack.enter_async_context(stream(http, user.tenant_id, user.headers))
                for user in (alice, alice, alice, tenant.admin, world.b.bob, world.b.bob)
            ]
            assert {s.status_code for s in before} == {200}
            await asyncio.to_thread(dedicated.server.stop)
            for events in before:
                await events.wait_until_ended("the streams to end with the database")
            async with stream(http, tenant.tenant_id, alice.headers) as while_down:
                assert while_down.status_code == 503
                assert while_down.response.headers["retry-after"]
            await asyncio.to_thread(dedicated.server.start_port, dedicated.port)

            async def reopened() -> bool:
                events = await stack.enter_async_context(stream(http, tenant.tenant_id, alice.headers))
                if events.status_code != 200:
                    return False
                after.append(events)
                return len(after) == 4  # enough for both workers to hold some

            after: list[EventStream] = []
            await until(reopened, "four new streams after the restart")
            created = await http.post(tenant.path(), headers=alice.headers, json={"title": "after the restart"})
            assert created.status_code == 201
            for events in after:
                event = await events.wait_for_event("session", "the first event after the restart")
                assert event.json() == created.json()
        log = server.output()
    assert all(events.error is None for events in before)  # ended by the server, cleanly
    assert log.count("live updates: listening on chat_events") >= 4  # two workers, each twice
    # (asyncpg's pool logs its own tracebacks while it cannot restore its floor: not ours.)
    assert "app/events" not in log, log  # no traceback through the live updates
    assert "Exception in ASGI application" not in log, log
