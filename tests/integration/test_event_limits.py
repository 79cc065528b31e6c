"""Limits of the live updates over a real server: the stream cap, and no pooled connection held by an open stream.

A module of its own, so that no other test's server has connections to the database while
``pg_stat_activity`` is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack

import asyncpg
import httpx
import pytest

from tests.factories import World
from tests.integration.test_events import server_env
from tests.live import LiveServer, live_server
from tests.polling import until
from tests.sse import stream


@pytest.fixture
def small(database) -> Iterator[LiveServer]:
    """A pool of one connection, a tenant share of one, three streams at most (a server per test: no stream left
    over from another test takes a place)."""
    env = server_env(
        database, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1", DB_POOL_TENANT_MAX="1", EVENTS_MAX_STREAMS="3"
    )
    with live_server(env) as server:
        yield server


async def test_past_events_max_streams_a_new_stream_is_503_with_retry_after(small: LiveServer, world: World) -> None:
    tenant = world.a
    async with httpx.AsyncClient(base_url=small.url, timeout=30) as http, AsyncExitStack() as stack:
        first = await stack.enter_async_context(stream(http, tenant.tenant_id, tenant.alice.headers))
        for user in (tenant.bob, tenant.admin):
            assert (await stack.enter_async_context(stream(http, tenant.tenant_id, user.headers))).status_code == 200
        async with stream(http, tenant.tenant_id, tenant.alice.headers) as refused:
            assert refused.status_code == 503
            assert refused.response.headers["retry-after"] == "5"
            assert refused.response.json()["detail"] == "too many open streams, retry shortly"
        assert first.status_code == 200
        await first.stop()
        await first.response.aclose()  # the client goes away: its place is free again

        async def opens() -> bool:
            async with stream(http, tenant.tenant_id, tenant.alice.headers) as again:
                return again.status_code == 200

        await until(opens, "a stream to open once one closed")


async def test_open_streams_hold_no_pooled_connection_and_no_transaction(
    small: LiveServer, world: World, owner: asyncpg.Pool, database
) -> None:
    """A pool of ONE connection and a tenant share of one: three open streams, and the API still answers."""
    tenant, alice = world.a, world.a.alice
    name = database.owner_dsn.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=small.url, timeout=30) as http, AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(stream(http, tenant.tenant_id, user.headers))
            for user in (alice, alice, tenant.admin)
        ]
        assert [s.status_code for s in streams] == [200, 200, 200]
        backends = await owner.fetch(
            "SELECT application_name, state FROM pg_stat_activity WHERE usename = 'chat_app' AND datname = $1", name
        )
        listed = await http.get(tenant.path(), headers=alice.headers)  # the pool's one connection is free
        assert listed.status_code == 200, listed.text
        created = await http.post(tenant.path(), headers=alice.headers, json={"title": "with one connection"})
        for events in streams[:2]:
            await events.wait_for_event("session", "the new session", lambda d: d["title"] == "with one connection")
    assert created.status_code == 201
    states = sorted((row["application_name"], row["state"]) for row in backends)
    # One pooled connection, idle (no transaction left open by a stream), and the one listening connection.
    assert states == [("chat-sessions-api", "idle"), ("chat-sessions-api events", "idle")], states
