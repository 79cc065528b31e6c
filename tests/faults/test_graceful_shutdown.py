"""Graceful shutdown: SIGTERM while a request is in flight; the server stops listening, the request completes.

A real ``python -m app serve`` process; the request is held in flight by a lock the owner
keeps on ``sessions`` (so it is inside PostgreSQL, holding its transaction, when SIGTERM comes).
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import AsyncExitStack

import asyncpg
import httpx

from tests.conftest import TEST_JWT_SECRET
from tests.factories import World
from tests.faults.test_slow_database import sessions_locked
from tests.live import live_server
from tests.polling import until, wait_for_lock_waiters
from tests.sse import stream


async def refuses_connections(url: str) -> bool:
    """True once a new connection to ``url`` is refused."""
    async with httpx.AsyncClient(base_url=url) as newcomer:
        try:
            await newcomer.get("/health")
        except httpx.ConnectError:
            return True
    return False


async def test_sigterm_lets_the_in_flight_request_finish_then_the_server_exits_cleanly(
    database, world: World, owner: asyncpg.Pool
) -> None:
    env = {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DB_STATEMENT_TIMEOUT_MS": "60000",
    }
    with live_server(env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with sessions_locked(owner):
                in_flight = asyncio.create_task(http.get(world.a.path(), headers=world.a.alice.headers))
                await wait_for_lock_waiters(owner, 1)
                server.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await until(lambda: refuses_connections(server.url), "the server to stop accepting connections")
                still_running = server.process.poll() is None
                assert not in_flight.done()
            response = await in_flight
        exit_code = await asyncio.to_thread(server.process.wait, 30)
        exited = time.monotonic()
        log = server.output()
    print(f"\nSIGTERM → in-flight request {response.status_code}, exit {exit_code} after {exited - signalled:.2f} s")
    assert still_running
    assert response.status_code == 200
    assert {s["session_id"] for s in response.json()["sessions"]} == {
        str(s) for s in world.a.sessions[world.a.alice.user_id]
    }
    # uvicorn re-raises the signal once its graceful shutdown is done: killed by SIGTERM, not crashed.
    assert exit_code == -signal.SIGTERM, log
    assert "Traceback" not in log, log


async def test_sigterm_ends_open_event_streams_cleanly_and_the_server_exits(database, world: World) -> None:
    """uvicorn waits for open responses before it shuts the app down: the streams must end on the signal itself."""
    env = {"DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.runtime_dsn, "JWT_SECRET": TEST_JWT_SECRET}
    with live_server(env, "--workers", "2") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http, AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(stream(http, user.tenant_id, user.headers))
                for user in (world.a.alice, world.a.alice, world.a.admin, world.b.bob)
            ]
            assert {s.status_code for s in streams} == {200}
            server.process.send_signal(signal.SIGTERM)
            for events in streams:
                await events.wait_until_ended("the stream to end on SIGTERM")
        exit_code = await asyncio.to_thread(server.process.wait, 30)  # a hang would time out here
        log = server.output()
    assert all(events.error is None for events in streams)  # the response was finished, not cut
    assert exit_code == 0, log  # uvicorn's supervisor of several workers exits 0 once they have finished
    assert log.count("Application shutdown complete.") == 2, log
    assert "Traceback" not in log, log
