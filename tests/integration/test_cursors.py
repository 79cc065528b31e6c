"""Keyset cursors over HTTP (contract §5): walks that never repeat or skip, under concurrent writes; refusals."""

from __future__ import annotations

import itertools
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.contract import assert_names_field
from tests.factories import TestTenant, TestUser, World, add_message, create_session

SORTS = list(itertools.product(("updated_at", "created_at"), ("desc", "asc")))


async def page(client: Any, path: str, user: TestUser, **params: Any) -> dict[str, Any]:
    response = await client.get(path, headers=user.headers, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(client: Any, path: str, user: TestUser, key: str, limit: int, **params: Any) -> list[uuid.UUID]:
    """Every row of a cursor walk, checking each page's has_more/offset/next_cursor."""
    seen: list[uuid.UUID] = []
    body = await page(client, path, user, limit=limit, **params)
    while True:
        items = body["sessions" if "sessions" in body else "messages"]
        seen += [uuid.UUID(item[key]) for item in items]
        assert body["offset"] == 0
        assert len(items) <= limit
        if body["next_cursor"] is None:
            return seen
        assert len(items) == limit
        body = await page(client, path, user, limit=limit, cursor=body["next_cursor"], **params)
        assert body["has_more"] is (body["next_cursor"] is not None)


async def many_sessions(owner: asyncpg.Pool, user: TestUser, count: int) -> list[uuid.UUID]:
    """``count`` sessions, several sharing one timestamp (ties) and others 1 µs apart."""
    base = datetime.now(UTC) - timedelta(days=1)
    ids = []
    for index in range(count):
        moment = base + timedelta(microseconds=index // 3)  # groups of three share a timestamp
        ids.append(await create_session(owner, user, title=f"c{index}", created_at=moment, updated_at=moment))
    return ids


async def ordered(owner: asyncpg.Pool, where: str, *args: Any, sort_by: str, order: str) -> list[uuid.UUID]:
    rows = await owner.fetch(
        f"SELECT session_id FROM sessions WHERE {where} ORDER BY {sort_by} {order}, session_id {order}", *args
    )
    return [r["session_id"] for r in rows]


@pytest.mark.parametrize(("sort_by", "order"), SORTS)
async def test_a_cursor_walk_lists_every_session_once_in_order(client, world: World, owner, sort_by, order) -> None:
    a = world.a
    await many_sessions(owner, a.bob, 25)
    want = await ordered(owner, "user_id = $1 AND NOT archived", a.bob.user_id, sort_by=sort_by, order=order)
    for limit in (1, 4, 7, 100):
        assert await walk(client, a.path(), a.bob, "session_id", limit, sort_by=sort_by, order=order) == want
    tenant = await ordered(owner, "tenant_id = $1 AND NOT archived", a.tenant_id, sort_by=sort_by, order=order)
    assert await walk(client, a.path(), a.admin, "session_id", 6, sort_by=sort_by, order=order) == tenant


async def test_the_offset_mode_returns_a_next_cursor_and_limit_may_change_between_pages(
    client, world: World, owner
) -> None:
    a = world.a
    await many_sessions(owner, a.bob, 12)
    want = await ordered(owner, "user_id = $1", a.bob.user_id, sort_by="updated_at", order="desc")
    first = await page(client, a.path(), a.bob, limit=5, offset=2)
    assert first["has_more"] is True
    second = await page(client, a.path(), a.bob, limit=3, cursor=first["next_cursor"])
    third = await page(client, a.path(), a.bob, limit=100, cursor=second["next_cursor"], offset=0)
    got = [uuid.UUID(s["session_id"]) for body in (first, second, third) for s in body["sessions"]]
    assert got == want[2:]
    assert (third["has_more"], third["next_cursor"], third["total"]) == (False, None, len(want))
    assert second["total"] == len(want)
    last = await page(client, a.path(), a.bob, limit=2, offset=len(want) - 2)
    assert (last["has_more"], last["next_cursor"]) == (False, None)


@pytest.mark.parametrize(("archived", "pinned"), [("all", None), ("true", "false"), ("false", "true"), ("all", "true")])
async def test_cursors_walk_filtered_lists(client, world: World, owner, archived: str, pinned: str | None) -> None:
    a = world.a
    ids = await many_sessions(owner, a.bob, 20)
    agent = next(iter(a.agents.values()))
    for index, session_id in enumerate(ids):
        await owner.execute(
            "UPDATE sessions SET pinned = $2, archived = $3, agent_id = $4 WHERE session_id = $1",
            session_id,
            index % 2 == 0,
            index % 3 == 0,
            agent if index % 4 else None,
        )
    where = "user_id = $1" + ("" if archived == "all" else f" AND archived = {archived}")
    where += "" if pinned is None else f" AND pinned = {pinned}"
    for agent_id in (None, agent):
        clause = where + ("" if agent_id is None else " AND agent_id = $2")
        args = (a.bob.user_id,) if agent_id is None else (a.bob.user_id, agent_id)
        want = await ordered(owner, clause, *args, sort_by="created_at", order="asc")
        params = {"archived": archived, "pinned": pinned, "agent_id": agent_id, "sort_by": "created_at", "order": "asc"}
        assert await walk(client, a.path(), a.bob, "session_id", 3, **params) == want
        assert await walk(client, a.path(), a.admin, "session_id", 3, user_id=a.bob.user_id, **params) == want


@pytest.mark.parametrize(("sort_by", "order"), SORTS)
async def test_a_walk_never_repeats_or_skips_while_sessions_are_created_updated_and_deleted(
    client, world: World, owner, sort_by: str, order: str
) -> None:
    a = world.a
    await many_sessions(owner, a.bob, 30)
    start = set(await ordered(owner, "user_id = $1", a.bob.user_id, sort_by=sort_by, order=order))
    seen: list[uuid.UUID] = []
    touched: set[uuid.UUID] = set()
    deleted: set[uuid.UUID] = set()
    body = await page(client, a.path(), a.bob, limit=4, sort_by=sort_by, order=order)
    step = 0
    while True:
        seen += [uuid.UUID(s["session_id"]) for s in body["sessions"]]
        if body["next_cursor"] is None:
            break
        # Between pages: a new session, a message (moves updated_at), a rename, a deletion, a pin.
        step += 1
        unseen = sorted(start - set(seen) - deleted - touched)
        created = await client.post(a.path(), headers=a.bob.headers, json={"title": f"new {step}"})
        touched.add(uuid.UUID(created.json()["session_id"]))
        if len(unseen) > 3:
            await add_message(owner, a.tenant_id, unseen[0], "moves updated_at")
            await client.patch(a.path(f"sessions/{unseen[1]}"), headers=a.bob.headers, json={"title": "renamed"})
            await client.delete(a.path(f"sessions/{unseen[2]}"), headers=a.bob.headers)
            await client.patch(a.path(f"sessions/{unseen[3]}"), headers=a.bob.headers, json={"pinned": True})
            touched.update(unseen[:2])
            deleted.add(unseen[2])
        body = await page(client, a.path(), a.bob, limit=4, sort_by=sort_by, order=order, cursor=body["next_cursor"])
    assert len(seen) == len(set(seen)), "a row came twice"
    assert not deleted & set(seen)
    # Every session that existed throughout and whose sort key did not move was listed exactly once.
    moved = touched if sort_by == "updated_at" else touched - start
    assert start - deleted - moved <= set(seen)
    assert step > 3


async def test_timestamps_in_cursors_round_trip_to_the_microsecond(client, world: World, owner) -> None:
    a = world.a
    base = datetime(2026, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    for index in range(8):  # 1 µs apart: a cursor rounding to milliseconds would skip or repeat
        moment = base + timedelta(microseconds=index)
        await create_session(owner, a.bob, created_at=moment, updated_at=moment)
    want = await ordered(owner, "user_id = $1", a.bob.user_id, sort_by="updated_at", order="asc")
    assert await walk(client, a.path(), a.bob, "session_id", 1, order="asc") == want


# -- refusals -----------------------------------------------------------------------------------


async def a_cursor(client: Any, tenant: TestTenant, user: TestUser, **params: Any) -> str:
    body = await page(client, tenant.path(), user, limit=1, **params)
    assert body["next_cursor"]
    return str(body["next_cursor"])


async def test_a_cursor_reused_under_other_parameters_is_a_400(client, world: World) -> None:
    a = world.a
    cursor = await a_cursor(client, a, a.admin)
    others = [
        {"sort_by": "created_at"},
        {"order": "asc"},
        {"archived": "all"},
        {"archived": "true"},
        {"pinned": "false"},
        {"agent_id": str(next(iter(a.agents.values())))},
        {"user_id": str(a.admin.user_id)},
    ]
    for params in others:
        response = await client.get(a.path(), headers=a.admin.headers, params={**params, "cursor": cursor})
        assert_names_field(response, "cursor")
        assert "other parameters" in response.json()["detail"]
    assert (
        await client.get(a.path(), headers=a.admin.headers, params={"cursor": cursor, "limit": 50})
    ).status_code == 200
    # A supporter's own cursor is bound to them: as user_id=themselves it is the same list.
    mine = await a_cursor(client, a, a.alice)
    same = {"cursor": mine, "user_id": str(a.alice.user_id)}
    assert (await client.get(a.path(), headers=a.alice.headers, params=same)).status_code == 200
    # Another user's cursor, or another tenant's, never opens their list.
    assert_names_field(await client.get(a.path(), headers=a.bob.headers, params={"cursor": mine}), "cursor")
    b = world.b
    assert_names_field(await client.get(b.path(), headers=b.admin.headers, params={"cursor": cursor}), "cursor")


async def test_a_tampered_or_malformed_cursor_is_a_400(client, world: World) -> None:
    a = world.a
    cursor = await a_cursor(client, a, a.alice)
    payload, mac = cursor.split(".")
    bad = [
        "",
        "x",
        "not.base64!",
        payload,
        f"{payload}.",
        f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{mac}",
        f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        f"{payload}x.{mac}",
        f"{cursor}.{mac}",
        "é" * 10,
        "A" * 201,
        cursor.upper(),
    ]
    for value in bad:
        response = await client.get(a.path(), headers=a.alice.headers, params={"cursor": value})
        assert_names_field(response, "cursor")


async def test_a_cursor_with_a_non_zero_offset_is_a_400(client, world: World) -> None:
    a = world.a
    cursor = await a_cursor(client, a, a.alice)
    assert_names_field(
        await client.get(a.path(), headers=a.alice.headers, params={"cursor": cursor, "offset": 1}), "cursor"
    )


async def test_a_cursor_of_a_server_with_another_secret_is_a_400(app_with, world: World) -> None:
    a = world.a
    async with app_with() as client:
        cursor = await a_cursor(client, a, a.alice)
    async with app_with(cursor_secret=secrets.token_urlsafe(48)) as other:
        assert_names_field(await other.get(a.path(), headers=a.alice.headers, params={"cursor": cursor}), "cursor")
        own = await a_cursor(other, a, a.alice)
        assert (await other.get(a.path(), headers=a.alice.headers, params={"cursor": own})).status_code == 200


# -- messages: order and cursors ------------------------------------------------------------------


async def history(owner: asyncpg.Pool, session_id: uuid.UUID, order: str) -> list[uuid.UUID]:
    rows = await owner.fetch(
        f"SELECT message_id FROM messages WHERE session_id = $1 ORDER BY created_at {order}, message_id {order}",
        session_id,
    )
    return [r["message_id"] for r in rows]


async def test_messages_newest_first_and_cursor_walks_in_both_orders(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    moment = datetime.now(UTC) - timedelta(hours=2)
    for index in range(17):  # pairs share a timestamp: ties are broken by message_id
        await add_message(
            owner, a.tenant_id, session_id, f"m{index}", created_at=moment + timedelta(microseconds=index // 2)
        )
    path = a.path(f"sessions/{session_id}/messages")
    for order in ("asc", "desc"):
        want = await history(owner, session_id, order)
        first = await page(client, path, a.alice, order=order, limit=5)
        assert [uuid.UUID(m["message_id"]) for m in first["messages"]] == want[:5]
        assert (first["total"], first["has_more"]) == (len(want), True)
        for limit in (1, 5, 200):
            assert await walk(client, path, a.alice, "message_id", limit, order=order) == want
        assert await walk(client, path, a.admin, "message_id", 4, order=order) == want  # an admin reads it too
    assert (await page(client, path, a.alice))["messages"] == (await page(client, path, a.alice, order="asc"))[
        "messages"
    ]


async def test_a_message_walk_never_repeats_or_skips_while_messages_are_added(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.bob.user_id][1]
    path = a.path(f"sessions/{session_id}/messages")
    for order in ("asc", "desc"):
        start = await history(owner, session_id, order)
        seen: list[uuid.UUID] = []
        body = await page(client, path, a.bob, order=order, limit=2)
        while True:
            seen += [uuid.UUID(m["message_id"]) for m in body["messages"]]
            if body["next_cursor"] is None:
                break
            await client.post(path, headers=a.bob.headers, json={"role": "user", "content": "between pages"})
            body = await page(client, path, a.bob, order=order, limit=2, cursor=body["next_cursor"])
        assert len(seen) == len(set(seen))
        if order == "desc":
            assert seen == start  # newer messages are above the walk's start
        else:
            assert seen[: len(start)] == start
            assert seen == await history(owner, session_id, order)  # the new ones follow, in order


async def test_message_cursors_are_bound_to_their_session_and_order(client, world: World) -> None:
    a = world.a
    first, second = a.sessions[a.alice.user_id][1:3]
    path = a.path(f"sessions/{first}/messages")
    cursor = (await page(client, path, a.alice, limit=1))["next_cursor"]
    assert cursor
    other = a.path(f"sessions/{second}/messages")
    assert_names_field(await client.get(other, headers=a.alice.headers, params={"cursor": cursor}), "cursor")
    for params in ({"order": "desc"}, {"offset": 1}):
        assert_names_field(
            await client.get(path, headers=a.alice.headers, params={**params, "cursor": cursor}), "cursor"
        )
    session_cursor = await a_cursor(client, a, a.alice)
    assert_names_field(await client.get(path, headers=a.alice.headers, params={"cursor": session_cursor}), "cursor")
    assert_names_field(await client.get(a.path(), headers=a.alice.headers, params={"cursor": cursor}), "cursor")
    assert_names_field(await client.get(path, headers=a.alice.headers, params={"order": "newest"}), "order")
    # Someone who may not read the session: 404 before any cursor is read.
    response = await client.get(path, headers=a.bob.headers, params={"cursor": cursor})
    assert response.status_code == 404
