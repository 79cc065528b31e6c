"""``GET /api/{tenant_id}/events`` over real servers: ``python -m app serve --workers 2`` and real SSE connections.

Which worker holds a connection is read from ``/proc`` (``tests.live.serving_pid``), so the
test knows that a write handled by one worker reached streams held by the other. Every wait
has a deadline (``tests.polling``); no sleep orders anything.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest

from app.settings import MAX_KEEPALIVE_SECONDS
from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, create_user, make_token
from tests.live import LiveServer, live_server, serving_pid, worker_pids
from tests.sse import EventStream, stream

KEEPALIVE = "1"  # seconds: keep-alives and the callers' checks come every second here


def server_env(database: Any, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
        "EVENTS_KEEPALIVE_SECONDS": KEEPALIVE,
        **extra,
    }


@pytest.fixture(scope="module")
def two_workers(database) -> Iterator[LiveServer]:
    """One server, two uvicorn worker processes (each with its listening connection)."""
    with live_server(server_env(database), "--workers", "2") as server:
        yield server


@pytest.fixture
async def http(two_workers: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=30) as client:
        yield client


def port_of(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


async def streams_on_both_workers(
    stack: AsyncExitStack, server: LiveServer, http: httpx.AsyncClient, tenant_id: uuid.UUID, headers: dict[str, str]
) -> dict[int, list[EventStream]]:
    """Streams of one user, opened until each worker holds at least one: {worker pid: streams}."""
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    placed: dict[int, list[EventStream]] = {pid: [] for pid in workers}
    for _ in range(24):  # the kernel hands each connection to one worker; both get some quickly
        events = await stack.enter_async_context(stream(http, tenant_id, headers))
        assert events.status_code == 200
        placed[serving_pid(server, events.local_port)].append(events)
        if all(placed.values()):
            return placed
    raise AssertionError(f"no stream landed on one of the workers: { {p: len(s) for p, s in placed.items()} }")


async def writer_on(stack: AsyncExitStack, server: LiveServer, pid: int) -> httpx.AsyncClient:
    """A client whose one keep-alive connection is held by worker ``pid``."""
    for _ in range(40):
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1))
        )
        if serving_pid(server, port_of(await client.get("/health"))) == pid:
            return client
    raise AssertionError(f"no connection reached worker {pid}")


def mine(events: EventStream, session_id: str) -> list[Any]:
    """The events about one session."""
    return [e for e in events.events if e.json().get("session_id") == session_id]


async def test_every_event_kind_reaches_the_streams_of_both_workers_whichever_handled_the_write(
    two_workers: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    tenant, alice = world.a, world.a.alice
    async with AsyncExitStack() as stack:
        placed = await streams_on_both_workers(stack, two_workers, http, tenant.tenant_id, alice.headers)
        everyone = [s for streams in placed.values() for s in streams]
        for pid in placed:
            writer = await writer_on(stack, two_workers, pid)

            async def everyone_got(kind: str, count: int, sid: str, pid: int = pid) -> list[Any]:
                """Until every stream has ``count`` events of the session, the last one ``kind``; their data."""
                for events in everyone:
                    where = serving_pid(two_workers, events.local_port)
                    await events.wait_for(
                        lambda s: len(mine(s, sid)) >= count,
                        f"{kind} of worker {pid}'s write on a stream of worker {where}",
                    )
                    assert [e.event for e in mine(events, sid)][count - 1] == kind
                return [e.json() for e in mine(events, sid)]

            created = await writer.post(tenant.path(), headers=alice.headers, json={"title": f"written by {pid}"})
            assert created.status_code == 201
            assert serving_pid(two_workers, port_of(created)) == pid  # the write was this worker's
            sid = created.json()["session_id"]
            assert (await everyone_got("session", 1, sid))[0] == created.json()  # exactly what the REST route answered
            posted = await writer.post(
                tenant.path(f"sessions/{sid}/messages"), headers=alice.headers, json={"role": "user", "content": "hi"}
            )
            assert posted.status_code == 201
            got = await everyone_got("message", 3, sid)
            assert (got[1]["message_count"], got[2]) == (1, posted.json())  # the session's count first, then it
            renamed = await writer.patch(tenant.path(f"sessions/{sid}"), headers=alice.headers, json={"title": "new"})
            assert (await everyone_got("session", 4, sid))[3] == renamed.json()
            deleted = await writer.delete(tenant.path(f"sessions/{sid}"), headers=alice.headers)
            assert deleted.status_code == 204
            assert (await everyone_got("session_deleted", 5, sid))[4] == {"session_id": sid}
            for events in everyone:
                assert serving_pid(two_workers, port_of(deleted)) == pid
                assert len(mine(events, sid)) == 5
        for events in everyone:
            ids = [int(e.id or 0) for e in events.events]
            assert ids == list(range(1, len(ids) + 1))  # every event has an id, in order


async def test_keep_alive_comments_come_while_nothing_happens(http: httpx.AsyncClient, world: World) -> None:
    async with stream(http, world.a.tenant_id, world.a.bob.headers) as events:
        await events.wait_for(lambda s: len(s.comments) >= 3, "three keep-alive comments")
    assert events.events == []
    gaps = [b.at - a.at for a, b in zip(events.comments, events.comments[1:], strict=False)]
    assert max(gaps) < MAX_KEEPALIVE_SECONDS  # the contract's bound (1 s is configured here)


async def test_a_reconnecting_client_first_gets_resync_and_nothing_is_replayed(
    http: httpx.AsyncClient, world: World
) -> None:
    tenant, bob = world.a, world.a.bob
    async with stream(http, tenant.tenant_id, bob.headers, last_event_id="41") as again:
        created = await http.post(tenant.path(), headers=bob.headers, json={"title": "after reconnecting"})
        sid = created.json()["session_id"]
        await again.wait_for_event("session", "the new session", lambda d: d["session_id"] == sid)
    first = again.events[0]
    assert (first.event, first.json(), first.id) == ("resync", {}, "1")
    assert [e.event for e in again.events] == ["resync", "session"]
    async with stream(http, tenant.tenant_id, bob.headers) as fresh:  # without Last-Event-ID: no resync
        await http.patch(tenant.path(f"sessions/{sid}"), headers=bob.headers, json={"title": "renamed"})
        await fresh.wait_for_event("session", "the rename", lambda d: d["title"] == "renamed")
    assert [e.event for e in fresh.events] == ["session"]


async def test_pinning_and_archiving_publish_the_session(http: httpx.AsyncClient, world: World) -> None:
    tenant, bob = world.a, world.a.bob
    first, second = (str(s) for s in tenant.sessions[bob.user_id][:2])
    async with stream(http, tenant.tenant_id, bob.headers) as events:
        pinned = await http.patch(tenant.path(f"sessions/{first}"), headers=bob.headers, json={"pinned": True})
        await events.wait_for_event("session", "the pin", lambda d: d["session_id"] == first and d["pinned"])
        archived = await http.post(tenant.path("sessions/archive"), headers=bob.headers, json={"session_ids": [second]})
        assert archived.json() == {"archived": 1}
        await events.wait_for_event(
            "session", "the bulk archive", lambda d: d["session_id"] == second and d["archived"]
        )
    sent = [e.json() for e in events.events]
    assert sent[0] == pinned.json()
    assert [(e["session_id"], e["pinned"], e["archived"]) for e in sent] == [
        (first, True, False),
        (second, False, True),
    ]


async def test_the_stream_ends_when_the_token_expires(http: httpx.AsyncClient, world: World) -> None:
    alice = world.a.alice
    expires = int(time.time()) + 3
    token = make_token(TEST_JWT_SECRET, alice.user_id, alice.tenant_id, exp=expires)
    async with stream(http, world.a.tenant_id, {"Authorization": f"Bearer {token}"}) as events:
        assert events.status_code == 200
        await events.wait_until_ended("the end of a stream whose token expired")
    assert time.time() >= expires  # not before
    assert events.error is None


async def test_the_streams_of_a_deleted_user_end_on_every_worker(
    two_workers: LiveServer, http: httpx.AsyncClient, world: World, owner: asyncpg.Pool
) -> None:
    gone = await create_user(owner, world.a.tenant_id, "supporter", TEST_JWT_SECRET)
    async with AsyncExitStack() as stack:
        placed = await streams_on_both_workers(stack, two_workers, http, world.a.tenant_id, gone.headers)
        colleague = await stack.enter_async_context(stream(http, world.a.tenant_id, world.a.bob.headers))
        await owner.execute("DELETE FROM users WHERE user_id = $1", gone.user_id)
        for streams in placed.values():
            for events in streams:
                await events.wait_until_ended("the end of the deleted user's stream")
        await colleague.wait_for(lambda s: len(s.comments) >= 3, "the colleague's stream to go on")
        assert not colleague.ended


async def test_an_admin_follows_one_user_and_a_supporter_only_themselves(http: httpx.AsyncClient, world: World) -> None:
    tenant = world.a
    bob_id = str(tenant.bob.user_id)
    async with (
        stream(http, tenant.tenant_id, tenant.admin.headers, {"user_id": bob_id}) as following,
        stream(http, tenant.tenant_id, tenant.admin.headers) as own,
        stream(http, tenant.tenant_id, tenant.alice.headers, {"user_id": str(tenant.alice.user_id)}) as herself,
        stream(http, tenant.tenant_id, tenant.alice.headers, {"user_id": bob_id}) as refused,
    ):
        assert (following.status_code, own.status_code, herself.status_code) == (200, 200, 200)
        assert refused.status_code == 403
        assert refused.response.json()["detail"] == "a supporter may only follow their own sessions"
        for user, title in ((tenant.alice, "alice's"), (tenant.admin, "admin's"), (tenant.bob, "bob's")):
            assert (await http.post(tenant.path(), headers=user.headers, json={"title": title})).status_code == 201
        await following.wait_for_event("session", "bob's session", lambda d: d["title"] == "bob's")
        await own.wait_for_event("session", "the admin's own session", lambda d: d["title"] == "admin's")
        await herself.wait_for_event("session", "alice's session", lambda d: d["title"] == "alice's")
    assert [e.json()["title"] for e in following.events] == ["bob's"]
    assert [e.json()["title"] for e in own.events] == ["admin's"]  # without user_id: the caller's own only
    assert [e.json()["title"] for e in herself.events] == ["alice's"]


async def test_the_route_authenticates_and_checks_the_tenant_like_every_route(
    http: httpx.AsyncClient, world: World
) -> None:
    async with stream(http, world.a.tenant_id, {}) as anonymous:
        assert anonymous.status_code == 401
    async with stream(http, world.a.tenant_id, world.b.alice.headers) as foreign:
        assert foreign.status_code == 403
    async with stream(http, world.a.tenant_id, world.a.alice.headers, {"user_id": "not-a-uuid"}) as malformed:
        assert malformed.status_code == 400
        assert malformed.response.json()["detail"].startswith("user_id ")
