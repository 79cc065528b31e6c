"""The fan-out of the live updates inside one process (the app in the test's loop, the real database).

Streams are opened on the app's ``Hub`` directly and their queues read, so the tests can
send forged notifications, build batches by hand and break reads on purpose. The HTTP side
(real SSE connections, two workers) is tests/integration/test_events.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.engine import get_engine
from app.db.transaction import RequestTransaction, TenantBusyError
from app.events import hub as hub_module
from app.events import queries
from app.events.hub import CHANNEL, EventsUnavailableError, Hub, Stream
from app.events.schemas import Notification
from app.main import create_app
from app.settings import Settings
from tests.conftest import TEST_JWT_SECRET, serve_app
from tests.factories import TestUser, World, add_message, create_session, create_user
from tests.polling import until
from tests.sse import Event, parse

FOREVER = 3600.0


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    """The app (keep-alive ticks far apart: the tests call what a tick does), its hub and a client."""
    app = create_app(replace(settings, events_keepalive_seconds=15))
    async with serve_app(app) as http:
        yield app.state.events, http


def open_stream(hub: Hub, user: TestUser, watched: TestUser | None = None, resync: bool = False) -> Stream:
    """A stream of ``user`` (following ``watched``) for an hour, as the route opens it."""
    return hub.open(user.tenant_id, user.user_id, (watched or user).user_id, time.time() + FOREVER, resync)


async def received(stream: Stream, until_event: Callable[[Event], bool]) -> list[Event]:
    """What the stream queues, up to the first event ``until_event`` accepts (keep-alives left out)."""
    events: list[Event] = []
    async with asyncio.timeout(30):
        while True:
            item = await stream.queue.get()
            assert isinstance(item, bytes), f"the stream ended after {events}"
            for event in parse(item):
                if event.event is not None:
                    events.append(event)
                    if until_event(event):
                        return events


def queued(stream: Stream) -> list[Event]:
    """What is queued on the stream now."""
    items = [stream.queue.get_nowait() for _ in range(stream.queue.qsize())]
    assert all(isinstance(item, bytes) for item in items)
    return parse(b"".join(item for item in items if isinstance(item, bytes)))


def data(event: Event) -> Any:
    return event.json()


async def notify(owner: asyncpg.Pool, payload: dict[str, Any] | str) -> None:
    """A notification on the channel, as anyone with a database login could send one."""
    text = payload if isinstance(payload, str) else json.dumps({k: str(v) for k, v in payload.items()})
    await owner.execute("SELECT pg_notify($1, $2)", CHANNEL, text)


async def test_events_are_read_under_the_streams_own_context_never_taken_from_the_payload(
    live, world: World, owner: asyncpg.Pool
) -> None:
    hub, http = live
    a, b = world.a, world.b
    alice = a.alice
    streams = [open_stream(hub, alice), open_stream(hub, a.admin, alice)]  # the admin may read bob's rows: not send
    bobs = a.sessions[a.bob.user_id][0]
    bobs_message = await add_message(owner, a.tenant_id, bobs, "bob's secret")
    alices = a.sessions[alice.user_id][0]
    b_session = b.sessions[b.alice.user_id][0]
    forged: list[dict[str, Any] | str] = [
        {"kind": "session", "tenant_id": a.tenant_id, "session_id": bobs, "user_id": alice.user_id},
        {"kind": "session", "tenant_id": a.tenant_id, "session_id": b_session, "user_id": alice.user_id},
        {
            "kind": "message",
            "tenant_id": a.tenant_id,
            "session_id": alices,
            "user_id": alice.user_id,
            "message_id": bobs_message,
        },
        {"kind": "message", "tenant_id": a.tenant_id, "session_id": alices, "user_id": alice.user_id},  # no message
        {"kind": "session_deleted", "tenant_id": a.tenant_id, "session_id": alices, "user_id": alice.user_id},
        "not json at all",
        {"kind": "sessions", "tenant_id": a.tenant_id, "session_id": alices, "user_id": alice.user_id},
    ]
    for payload in forged:
        await notify(owner, payload)
    created = await http.post(a.path(), headers=alice.headers, json={"title": "the sentinel"})
    assert created.status_code == 201
    for stream in streams:
        items = await received(stream, lambda item: data(item)["session_id"] == created.json()["session_id"])
        # Bob's session and message, tenant B's session: nothing. The forged deletion of a session that
        # still exists: no session_deleted, only the session as the reader may read it (it is alice's).
        assert [(item.event, data(item)["session_id"]) for item in items] == [
            ("session", str(alices)),
            ("session", created.json()["session_id"]),
        ]
        assert "bob's secret" not in str([item.data for item in items])
        assert data(items[0]) == (await http.get(a.path(f"sessions/{alices}"), headers=alice.headers)).json()


async def test_a_deleted_and_a_vanished_session(live, world: World, owner: asyncpg.Pool) -> None:
    hub, http = live
    alice = world.a.alice
    stream = open_stream(hub, alice)
    created = (await http.post(world.a.path(), headers=alice.headers, json={"title": "short-lived"})).json()
    sid = created["session_id"]
    await http.delete(world.a.path(f"sessions/{sid}"), headers=alice.headers)
    items = await received(stream, lambda item: item.event == "session_deleted")
    assert data(items[-1]) == {"session_id": sid}
    # A change announced for a session that is gone by the time it is read: nothing (nor a deletion).
    await notify(
        owner, {"kind": "session", "tenant_id": world.a.tenant_id, "session_id": sid, "user_id": alice.user_id}
    )
    sentinel = (await http.post(world.a.path(), headers=alice.headers, json={"title": "after"})).json()
    items = await received(stream, lambda item: data(item)["session_id"] == sentinel["session_id"])
    assert [item.event for item in items] == ["session"]


async def test_resync_comes_first_and_the_response_ends_after_what_is_queued(live, world: World) -> None:
    hub, http = live
    stream = open_stream(hub, world.a.bob, resync=True)
    body = hub.events(stream)
    [first] = parse((await anext(body)).encode())
    assert (first.event, first.data, first.id) == ("resync", "{}", "1")
    created = (await http.post(world.a.path(), headers=world.a.bob.headers, json={"title": "queued"})).json()
    [second] = parse((await anext(body)).encode())
    assert (second.event, data(second), second.id) == ("session", created, "2")
    hub.end(stream, "test")
    with pytest.raises(StopAsyncIteration):
        await anext(body)
    assert stream not in hub.streams


async def test_a_batch_is_read_once_per_reader_whatever_the_number_of_streams(
    live, world: World, owner: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, _http = live
    a = world.a
    tabs = [open_stream(hub, a.alice) for _ in range(50)]
    following = [open_stream(hub, a.admin, a.alice) for _ in range(10)]
    bobs_tab = open_stream(hub, a.bob)
    sid = a.sessions[a.alice.user_id][1]
    # Rows written without their triggers (no notification): the batch below is the only one about them.
    async with owner.acquire() as connection:
        await connection.execute("SET session_replication_role = replica")
        ids = [
            await connection.fetchval(
                "INSERT INTO messages (session_id, tenant_id, user_id, role, content) "
                "VALUES ($1, $2, $3, 'user', $4) RETURNING message_id",
                sid,
                a.tenant_id,
                a.alice.user_id,
                f"burst {n}",
            )
            for n in range(20)
        ]
        await connection.execute("SET session_replication_role = origin")
    batch = [Notification("message", a.tenant_id, sid, a.alice.user_id, m) for m in ids]
    batch.insert(10, Notification("session", a.tenant_id, sid, a.alice.user_id))
    batch.append(Notification("session", a.tenant_id, sid, a.alice.user_id))  # the same session again: one event
    reads: list[tuple[uuid.UUID, int, int]] = []
    original = queries.read_rows

    async def counted(transaction: Any, tenant_id: Any, reader_id: Any, session_ids: Any, message_ids: Any) -> Any:
        reads.append((reader_id, len(session_ids), len(message_ids)))
        return await original(transaction, tenant_id, reader_id, session_ids, message_ids)

    monkeypatch.setattr(queries, "read_rows", counted)
    await hub.dispatch(batch)
    assert sorted(reads) == sorted([(a.alice.user_id, 1, 20), (a.admin.user_id, 1, 20)])
    for stream in tabs + following:
        items = queued(stream)
        assert [i.event for i in items] == ["message"] * 10 + ["session"] + ["message"] * 10
        assert [i.id for i in items] == [str(n) for n in range(1, 22)]
        assert [i.json()["content"] for i in items if i.event == "message"] == [f"burst {n}" for n in range(20)]
    assert bobs_tab.queue.empty()


async def test_a_read_that_raises_ends_its_streams_and_the_others_are_served(
    live, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hub, http = live
    original = queries.read_rows

    async def broken_for_alice(transaction: Any, tenant_id: Any, reader_id: Any, *ids: Any) -> Any:
        if reader_id == world.a.alice.user_id:
            raise RuntimeError("a bug in a read")
        return await original(transaction, tenant_id, reader_id, *ids)

    monkeypatch.setattr(queries, "read_rows", broken_for_alice)
    alices, bobs = open_stream(hub, world.a.alice), open_stream(hub, world.a.bob)
    await http.post(world.a.path(), headers=world.a.alice.headers, json={"title": "alice's"})
    created = (await http.post(world.a.path(), headers=world.a.bob.headers, json={"title": "bob's"})).json()
    await until(lambda: alices.ended, "the stream whose read raised to end")
    items = await received(bobs, lambda item: data(item)["session_id"] == created["session_id"])
    assert [item.event for item in items] == ["session"]
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records if "a read failed" in r.getMessage())


async def test_a_client_that_does_not_read_is_ended(
    live, world: World, owner: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, http = live
    monkeypatch.setattr(hub_module, "PENDING_MAX", 2)
    stream = open_stream(hub, world.a.bob)
    for n in range(3):
        await http.post(world.a.path(), headers=world.a.bob.headers, json={"title": f"unread {n}"})
    await until(lambda: stream.ended, "the stream of a client that does not read to end")
    assert stream not in hub.streams


async def test_a_process_that_falls_behind_ends_every_stream_rather_than_grow(
    live, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, _http = live
    monkeypatch.setattr(hub_module, "BACKLOG_MAX", 2)
    streams = [open_stream(hub, world.a.alice), open_stream(hub, world.b.bob)]
    a = world.a
    payload = json.dumps(
        {
            "kind": "session",
            "tenant_id": str(a.tenant_id),
            "session_id": str(uuid.uuid4()),
            "user_id": str(a.alice.user_id),
        }
    )
    for _ in range(3):  # as the listening connection hands them over, before the dispatcher runs
        hub._notified(None, 0, CHANNEL, payload)
    assert all(s.ended for s in streams)
    assert hub._pending == []


async def test_the_callers_are_checked_again_in_their_tenant(live, world: World, owner: asyncpg.Pool) -> None:
    hub, _http = live
    a = world.a
    gone = await create_user(owner, a.tenant_id, "supporter", TEST_JWT_SECRET)
    demoted = await create_user(owner, a.tenant_id, "admin", TEST_JWT_SECRET)
    streams = {
        "gone": open_stream(hub, gone),
        "demoted, following bob": open_stream(hub, demoted, a.bob),
        "demoted, own": open_stream(hub, demoted),
        "admin, following bob": open_stream(hub, a.admin, a.bob),
        "alice": open_stream(hub, a.alice),
    }
    await hub.check_readers()
    assert not any(s.ended for s in streams.values())
    await owner.execute("DELETE FROM users WHERE user_id = $1", gone.user_id)
    await owner.execute("UPDATE users SET role = 'supporter' WHERE user_id = $1", demoted.user_id)
    await hub.check_readers()
    assert {name for name, s in streams.items() if s.ended} == {"gone", "demoted, following bob"}


async def test_a_read_that_fails_ends_its_streams_and_they_reconnect(
    settings: Settings, world: World, owner: asyncpg.Pool
) -> None:
    app = create_app(replace(settings, pool_min_size=1, pool_max_size=1, pool_timeout=0.2))
    async with serve_app(app) as http:
        hub: Hub = app.state.events
        stream = open_stream(hub, world.a.bob)
        checked = open_stream(hub, world.a.alice)
        held = await get_engine().connections.acquire()  # the pool's one connection: every read waits, then fails
        try:
            sid = await create_session(owner, world.a.bob, title="unreadable for now")
            await until(lambda: stream.ended, "the stream whose read failed to end")
            await hub.check_readers()
            assert checked.ended
        finally:
            await get_engine().connections.release(held)
        assert (await http.get(world.a.path(f"sessions/{sid}"), headers=world.a.bob.headers)).status_code == 200


async def test_read_rows_rolls_back_a_failed_read_and_gives_everything_back(live, world: World) -> None:
    hub, http = live
    a = world.a
    engine = get_engine()
    not_an_id: Any = "x"  # the statement fails inside the transaction
    with pytest.raises(asyncpg.DataError):
        await queries.read_rows(
            RequestTransaction(engine, hub.limits, hub.shares), a.tenant_id, a.alice.user_id, [not_an_id], []
        )
    # Its place in the tenant's share is free again: one share held now leaves none, and the next read says so.
    for _ in range(hub.shares.limit):
        await hub.shares.acquire(a.tenant_id)
    busy = replace(hub.limits, acquire_timeout=0.1)
    try:
        with pytest.raises(TenantBusyError):
            await queries.read_rows(RequestTransaction(engine, busy, hub.shares), a.tenant_id, a.alice.user_id, [], [])
    finally:
        for _ in range(hub.shares.limit):
            hub.shares.release(a.tenant_id)
    rows = await queries.read_rows(
        RequestTransaction(engine, hub.limits, hub.shares), a.tenant_id, uuid.uuid4(), [], []
    )
    assert rows is None  # not a user of the tenant
    assert (await http.get(a.path(), headers=a.alice.headers)).status_code == 200


async def test_a_lost_listening_connection_ends_every_stream_and_comes_back(
    live, world: World, owner: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, http = live
    alice = world.a.alice
    first = open_stream(hub, alice)
    terminated = await owner.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid = $2",
        hub_module.APPLICATION_NAME,
        hub.listener_pid,
    )
    assert terminated == 1
    await until(lambda: first.ended, "the streams to end with the listening connection")
    await until(lambda: hub.listening, "the hub to listen again")
    again = open_stream(hub, alice)
    created = (await http.post(world.a.path(), headers=alice.headers, json={"title": "after the loss"})).json()
    items = await received(again, lambda item: data(item)["session_id"] == created["session_id"])
    assert [item.event for item in items] == ["session"]
    # A probe that does not come back counts as a lost connection too: here the connection stops listening
    # (as one behind a transaction-mode pooler effectively does).
    monkeypatch.setattr(hub_module, "PROBE_TIMEOUT", 0.5)
    await hub.probe_listener()
    assert not again.ended  # it came back
    await hub._listener.execute(f"UNLISTEN {CHANNEL}")
    await hub.probe_listener()
    await until(lambda: again.ended, "the streams to end when the probe failed")
    await until(lambda: hub.listening, "the hub to listen again after the failed probe")


async def test_ticks_send_keep_alives_and_end_the_streams_of_a_deleted_user(
    settings: Settings, world: World, owner: asyncpg.Pool
) -> None:
    app = create_app(replace(settings, events_keepalive_seconds=0.1, events_max_streams=2))
    async with serve_app(app):
        hub: Hub = app.state.events
        gone = await create_user(owner, world.a.tenant_id, "supporter", TEST_JWT_SECRET)
        stream = open_stream(hub, gone)
        other = open_stream(hub, world.a.bob)
        with pytest.raises(EventsUnavailableError, match="too many open streams"):
            open_stream(hub, world.a.alice)
        item = await asyncio.wait_for(stream.queue.get(), 30)
        assert isinstance(item, bytes)
        [keep_alive] = parse(item)
        assert (keep_alive.comment, keep_alive.event, keep_alive.id) == ("keep-alive", None, None)
        await owner.execute("DELETE FROM users WHERE user_id = $1", gone.user_id)
        await until(lambda: stream.ended, "a tick to end the deleted user's stream")
        assert not other.ended
        assert open_stream(hub, world.a.alice) in hub.streams  # the place is free again


async def test_the_route_refuses_what_it_must_and_ends_when_the_server_shuts_down(live, world: World) -> None:
    hub, http = live
    a = world.a
    refused = await http.get(a.path("events"), headers=a.alice.headers, params={"user_id": str(a.bob.user_id)})
    assert refused.status_code == 403
    # A 200 is an open stream: ASGITransport answers once it ends, here when the server shuts down.
    answer = asyncio.create_task(
        http.get(a.path("events"), headers=a.admin.headers, params={"user_id": str(a.bob.user_id)})
    )
    await until(lambda: len(hub.streams) == 1, "the stream to open")
    created = (await http.post(a.path(), headers=a.bob.headers, json={"title": "seen by the admin"})).json()
    await until(lambda: next(iter(hub.streams)).sent == 1, "the event to be queued")
    hub.shutdown()
    response = await answer
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == f"id: 1\r\nevent: session\r\ndata: {json.dumps(created, separators=(',', ':'))}\r\n\r\n"
    after = await http.get(a.path("events"), headers=a.alice.headers)
    assert after.status_code == 503
    assert after.headers["retry-after"] == "5"
    assert after.json()["detail"] == "the server is shutting down, retry shortly"
