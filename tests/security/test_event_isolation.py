"""The isolation campaign of the live updates: open streams of two tenants, randomized writes, zero foreign events.

Two real server processes (each its own listening connection). On each, streams are open for
the admin, alice and bob of tenants A and B, for each admin following bob, and for an admin of
each tenant following a user id of the *other* tenant. Randomized writes (create, post, rename,
delete, and writes the API refuses) run in both tenants through both processes. Every event
every stream received must be about a session of the stream's tenant owned by the user it
follows; the number of foreign events must be 0, and no foreign marker may appear in any
event. Each stream then gets a sentinel write of its followed user, and the streams that can
never receive anything end when their caller is deleted, so the campaign waits for conditions,
never for time.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.factories import TestTenant, TestUser, World, create_user, make_world
from tests.live import LiveServer, live_server
from tests.security.attack import leaks, tenant_markers
from tests.sse import EventStream, stream

WRITES = 240
SEED = int.from_bytes(secrets.token_bytes(4), "big")


@pytest.fixture(scope="module")
def servers(database) -> Iterator[list[LiveServer]]:
    env = {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
        "EVENTS_KEEPALIVE_SECONDS": "1",
    }
    with live_server(env) as first, live_server(env) as second:
        yield [first, second]


@dataclass
class Watch:
    """One open stream: its caller, the tenant and user it follows, what it received."""

    name: str
    caller: TestUser
    watched_id: uuid.UUID
    events: EventStream
    ends_by_deletion: bool = False


@dataclass
class Truth:
    """What the campaign wrote: each session's tenant and owner, each message's session."""

    sessions: dict[str, tuple[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)


def entitled(truth: Truth, watch: Watch, kind: str, data: dict[str, object]) -> bool:
    """The event is about a session of the stream's tenant that the followed user owns."""
    if kind == "resync":
        return False
    session_id = str(data["session_id"])
    if kind == "message" and truth.messages.get(str(data["message_id"])) != session_id:
        return False
    return truth.sessions.get(session_id) == (watch.caller.tenant_id, watch.watched_id)


def is_session(session_id: str) -> Callable[[Any], bool]:
    """Whether an event's data is about ``session_id``."""
    return lambda data: bool(data["session_id"] == session_id)


def not_for(world: World, watch: Watch) -> set[str]:
    """What must never appear on ``watch``'s stream: the other tenant's rows, and its own tenant's other users'."""
    own, other = (world.a, world.b) if watch.caller.tenant_id == world.a.tenant_id else (world.b, world.a)
    markers = tenant_markers(other)
    markers |= {u.email for u in (own.admin, own.alice, own.bob) if u.user_id != watch.watched_id}
    markers |= {str(s) for user_id, ids in own.sessions.items() if user_id != watch.watched_id for s in ids}
    return markers


async def write(
    rng: random.Random, http: httpx.AsyncClient, world: World, truth: Truth, live: dict[uuid.UUID, list[str]]
) -> None:
    """One random write by a random user of a random tenant (some of them refused by the API)."""
    tenant: TestTenant = rng.choice([world.a, world.b])
    user: TestUser = rng.choice([tenant.admin, tenant.alice, tenant.bob])
    mine = live[user.user_id]
    action = rng.choice(["create", "create", "post", "post", "post", "rename", "delete", "refused"])
    if action == "create" or not mine:
        answer = await http.post(tenant.path(), headers=user.headers, json={"title": f"{tenant.name} {user.email}"})
        assert answer.status_code == 201, answer.text
        truth.sessions[answer.json()["session_id"]] = (tenant.tenant_id, user.user_id)
        mine.append(answer.json()["session_id"])
    elif action == "post":
        sid = rng.choice(mine)
        body = {"role": rng.choice(["user", "assistant"]), "content": f"{tenant.name} message from {user.email}"}
        answer = await http.post(tenant.path(f"sessions/{sid}/messages"), headers=user.headers, json=body)
        assert answer.status_code == 201, answer.text
        truth.messages[answer.json()["message_id"]] = sid
    elif action == "rename":
        sid = rng.choice(mine)
        answer = await http.patch(tenant.path(f"sessions/{sid}"), headers=user.headers, json={"title": user.email})
        assert answer.status_code == 200, answer.text
    elif action == "delete":
        sid = mine.pop(rng.randrange(len(mine)))
        answer = await http.delete(tenant.path(f"sessions/{sid}"), headers=user.headers)
        assert answer.status_code == 204, answer.text
    else:  # a write the API refuses (a colleague's session, another tenant's): it must publish nothing
        others = [s for uid, ids in live.items() if uid != user.user_id for s in ids]
        if not others:
            return
        sid = rng.choice(others)
        answer = await http.post(
            tenant.path(f"sessions/{sid}/messages"), headers=user.headers, json={"role": "user", "content": "nope"}
        )
        assert answer.status_code in (403, 404), answer.text
    truth.outcomes[action] += 1


async def test_no_stream_ever_receives_an_event_it_is_not_entitled_to(
    servers: list[LiveServer], owner: asyncpg.Pool
) -> None:
    world = await make_world(owner, TEST_JWT_SECRET)
    a, b = world.a, world.b
    # Admins of each tenant who follow a user id of the other tenant; deleted at the end, which ends their streams.
    a_prying = await create_user(owner, a.tenant_id, "admin", TEST_JWT_SECRET)
    b_prying = await create_user(owner, b.tenant_id, "admin", TEST_JWT_SECRET)
    plan: list[tuple[str, TestUser, TestUser | uuid.UUID]] = []
    for tenant in (a, b):
        plan += [
            (f"{tenant.name} admin", tenant.admin, tenant.admin),
            (f"{tenant.name} alice", tenant.alice, tenant.alice),
            (f"{tenant.name} bob", tenant.bob, tenant.bob),
            (f"{tenant.name} admin following bob", tenant.admin, tenant.bob),
        ]
    plan += [("B admin following A's alice", b_prying, a.alice.user_id), ("A admin following B's bob", a_prying, b.bob)]
    rng = random.Random(SEED)
    truth = Truth()
    live: dict[uuid.UUID, list[str]] = {u.user_id: [] for t in (a, b) for u in (t.admin, t.alice, t.bob)}
    for tenant in (a, b):
        for user_id, ids in tenant.sessions.items():
            truth.sessions |= {str(s): (tenant.tenant_id, user_id) for s in ids}
            live[user_id] += [str(s) for s in ids]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=s.url, timeout=30)) for s in servers]
        watches: list[Watch] = []
        for http in clients:
            for name, caller, watched in plan:
                watched_id = watched if isinstance(watched, uuid.UUID) else watched.user_id
                params = None if watched_id == caller.user_id else {"user_id": str(watched_id)}
                events = await stack.enter_async_context(stream(http, caller.tenant_id, caller.headers, params))
                assert events.status_code == 200, (name, events.response.text)
                prying = caller.user_id in (a_prying.user_id, b_prying.user_id)
                watches.append(Watch(name, caller, watched_id, events, ends_by_deletion=prying))

        for _ in range(WRITES):
            await write(rng, rng.choice(clients), world, truth, live)

        # A sentinel per followed user; once a stream has its own, everything committed before has reached it
        # (a process delivers in commit order, and every process holds sentinel streams).
        sentinels: dict[uuid.UUID, str] = {}
        for tenant in (a, b):
            for user in (tenant.admin, tenant.alice, tenant.bob):
                answer = await clients[0].post(tenant.path(), headers=user.headers, json={"title": "sentinel"})
                sentinels[user.user_id] = answer.json()["session_id"]
                truth.sessions[sentinels[user.user_id]] = (tenant.tenant_id, user.user_id)
        for watch in watches:
            if not watch.ends_by_deletion:
                await watch.events.wait_for_event(
                    "session", f"the sentinel on {watch.name}'s stream", is_session(sentinels[watch.watched_id])
                )
        await owner.execute("DELETE FROM users WHERE user_id = ANY($1)", [a_prying.user_id, b_prying.user_id])
        for watch in watches:
            if watch.ends_by_deletion:
                await watch.events.wait_until_ended(f"the end of {watch.name}'s stream")

    foreign: list[tuple[str, str, str]] = []
    leaked: list[tuple[str, set[str]]] = []
    kinds: Counter[str] = Counter()
    for watch in watches:
        assert watch.events.error is None, (watch.name, watch.events.error)
        markers = not_for(world, watch)
        for event in watch.events.events:
            kinds[str(event.event)] += 1
            body = event.json()
            if not entitled(truth, watch, str(event.event), body):
                foreign.append((watch.name, str(event.event), event.data))
            found = leaks(json.dumps(body), markers)
            if found:
                leaked.append((watch.name, found))
    # Every session the followed user created in the campaign was announced to each of their streams.
    missed = []
    for watch in watches:
        announced = {e.json()["session_id"] for e in watch.events.events}
        created = {s for s, (t, u) in truth.sessions.items() if (t, u) == (watch.caller.tenant_id, watch.watched_id)}
        fixtures = {str(s) for t in (a, b) for ids in t.sessions.values() for s in ids}
        missed += [(watch.name, s) for s in created - fixtures - announced]
    print(
        f"\nevent isolation campaign (seed {SEED}): {sum(truth.outcomes.values())} writes {dict(truth.outcomes)}, "
        f"{len(watches)} streams on {len(servers)} processes, events received {dict(kinds)}, foreign {len(foreign)}"
    )
    assert foreign == [], foreign[:3]
    assert leaked == [], leaked[:3]
    assert missed == [], missed[:3]
    assert {"session", "message", "session_deleted"} <= set(kinds)  # the campaign reached every kind
    followers_of_foreigners = [w for w in watches if w.ends_by_deletion]
    assert [len(w.events.events) for w in followers_of_foreigners] == [0, 0, 0, 0]
