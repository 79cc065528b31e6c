"""GET /api/{tenant_id}/sessions: every parameter and field of the contract, over HTTP on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.contract import ISO_UTC, SHAPES
from tests.factories import TestTenant, TestUser, World, add_message, create_session, create_user

EMPTY_PAGE = {
    "sessions": [],
    "total": 0,
    "limit": 10,
    "offset": 0,
    "has_more": False,
    "next_cursor": None,
    "total_capped": False,
}


async def list_sessions(client: Any, tenant: TestTenant, user: TestUser, **params: Any) -> dict[str, Any]:
    response = await client.get(tenant.path(), headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[uuid.UUID]:
    return [uuid.UUID(s["session_id"]) for s in body["sessions"]]


async def expected_order(owner: asyncpg.Pool, where: str, *args: Any, sort: str = "updated_at DESC") -> list[uuid.UUID]:
    direction = sort.split()[1]
    rows = await owner.fetch(
        f"SELECT session_id FROM sessions WHERE {where} ORDER BY {sort}, session_id {direction}", *args
    )
    return [r["session_id"] for r in rows]


# -- who sees what: user_id given/omitted × supporter/admin ---------------------------------


async def test_supporter_without_user_id_sees_only_own_sessions_newest_first(client, world: World, owner) -> None:
    body = await list_sessions(client, world.a, world.a.alice)
    assert ids(body) == await expected_order(owner, "user_id = $1", world.a.alice.user_id)
    assert body["total"] == 3
    assert {s["user_id"] for s in body["sessions"]} == {str(world.a.alice.user_id)}


async def test_supporter_naming_themselves_gets_the_same_page(client, world: World) -> None:
    mine = await list_sessions(client, world.a, world.a.alice)
    named = await list_sessions(client, world.a, world.a.alice, user_id=str(world.a.alice.user_id))
    assert named == mine


async def test_supporter_naming_another_user_is_forbidden(client, world: World) -> None:
    for other in (world.a.bob.user_id, world.a.admin.user_id, world.b.alice.user_id, uuid.uuid4()):
        response = await client.get(world.a.path(), headers=world.a.alice.headers, params={"user_id": str(other)})
        assert response.status_code == 403, other
        assert str(world.a.bob.user_id) not in response.text


async def test_admin_without_user_id_sees_the_whole_tenant(client, world: World, owner) -> None:
    body = await list_sessions(client, world.a, world.a.admin, limit=100)
    assert set(ids(body)) == world.a.all_session_ids
    assert ids(body) == await expected_order(owner, "tenant_id = $1", world.a.tenant_id)
    assert body["total"] == 6


async def test_admin_naming_a_user_sees_that_users_sessions(client, world: World, owner) -> None:
    body = await list_sessions(client, world.a, world.a.admin, user_id=str(world.a.bob.user_id))
    assert ids(body) == await expected_order(owner, "user_id = $1", world.a.bob.user_id)
    assert body["total"] == 2


async def test_admin_naming_a_user_outside_the_tenant_gets_an_empty_page(client, world: World) -> None:
    for stranger in (world.b.alice.user_id, world.b.admin.user_id, uuid.uuid4()):
        body = await list_sessions(client, world.a, world.a.admin, user_id=str(stranger))
        assert body == EMPTY_PAGE


# -- ordering and paging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort_by", "order"), [("updated_at", "desc"), ("updated_at", "asc"), ("created_at", "desc"), ("created_at", "asc")]
)
async def test_sort_by_and_order(client, world: World, owner, sort_by: str, order: str) -> None:
    body = await list_sessions(client, world.a, world.a.admin, sort_by=sort_by, order=order, limit=100)
    assert ids(body) == await expected_order(owner, "tenant_id = $1", world.a.tenant_id, sort=f"{sort_by} {order}")


async def test_created_at_order_differs_from_updated_at_order_when_activity_reorders(client, owner, settings) -> None:
    tenant = await fresh_user(owner, settings)
    now = datetime.now(UTC)
    old = await create_session(owner, tenant, created_at=now - timedelta(days=3))
    new = await create_session(owner, tenant, created_at=now - timedelta(days=1))
    await add_message(owner, tenant.tenant_id, old, "revived", created_at=now - timedelta(minutes=5))
    path = f"/api/{tenant.tenant_id}/sessions"
    by_update = (await client.get(path, headers=tenant.headers)).json()
    by_creation = (await client.get(path, headers=tenant.headers, params={"sort_by": "created_at"})).json()
    assert ids(by_update) == [old, new]
    assert ids(by_creation) == [new, old]


async def fresh_user(owner: asyncpg.Pool, settings, role: str = "supporter") -> TestUser:
    from tests.factories import create_tenant

    tenant_id = await create_tenant(owner)
    return await create_user(owner, tenant_id, role, settings.jwt_secret)


async def test_ties_are_broken_by_session_id_so_pages_never_repeat_or_skip(client, owner, settings) -> None:
    user = await fresh_user(owner, settings)
    same_time = datetime(2025, 1, 1, tzinfo=UTC)
    created = {await create_session(owner, user, created_at=same_time) for _ in range(23)}
    path = f"/api/{user.tenant_id}/sessions"
    for order in ("desc", "asc"):
        seen: list[uuid.UUID] = []
        for offset in range(0, 30, 7):
            page = (
                await client.get(path, headers=user.headers, params={"limit": 7, "offset": offset, "order": order})
            ).json()
            seen += ids(page)
        assert len(seen) == 23
        assert set(seen) == created
        assert seen == sorted(created, key=str, reverse=order == "desc")


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_limit_edges(client, world: World, limit: int) -> None:
    body = await list_sessions(client, world.a, world.a.admin, limit=limit)
    assert len(body["sessions"]) == min(limit, 6)
    assert body["limit"] == limit
    assert body["has_more"] is (limit < 6)


@pytest.mark.parametrize(
    ("offset", "count", "has_more"), [(0, 4, True), (2, 4, False), (5, 1, False), (6, 0, False), (1000, 0, False)]
)
async def test_offset_edges_and_has_more(client, world: World, offset: int, count: int, has_more: bool) -> None:
    body = await list_sessions(client, world.a, world.a.admin, limit=4, offset=offset)
    assert len(body["sessions"]) == count
    assert body["total"] == 6
    assert body["offset"] == offset
    assert body["has_more"] is has_more
    assert body["has_more"] == (offset + len(body["sessions"]) < body["total"])


async def test_a_user_without_sessions_gets_an_empty_list(client, owner, settings) -> None:
    user = await fresh_user(owner, settings)
    body = (await client.get(f"/api/{user.tenant_id}/sessions", headers=user.headers)).json()
    assert body == EMPTY_PAGE


# -- fields ----------------------------------------------------------------------------------


async def test_fields_message_count_agent_name_and_timestamps(client, world: World, owner) -> None:
    body = await list_sessions(client, world.a, world.a.alice)
    rows = {
        r["session_id"]: r
        for r in await owner.fetch(
            """SELECT s.session_id, s.title, a.name, s.created_at, s.updated_at,
                      (SELECT count(*) FROM messages m WHERE m.session_id = s.session_id) AS messages
               FROM sessions s LEFT JOIN agent_configs a ON a.agent_id = s.agent_id WHERE s.user_id = $1""",
            world.a.alice.user_id,
        )
    }
    assert len(body["sessions"]) == 3
    for session in body["sessions"]:
        row = rows[uuid.UUID(session["session_id"])]
        assert set(session) == SHAPES["SessionInfo"]
        assert session["message_count"] == row["messages"] > 0
        assert session["agent_name"] == row["name"]
        assert session["title"] == row["title"]
        for key in ("created_at", "updated_at"):
            assert ISO_UTC.match(session[key]), session[key]
            assert datetime.fromisoformat(session[key]) == row[key]


async def test_session_without_agent_has_null_agent_name(client, owner, settings) -> None:
    user = await fresh_user(owner, settings)
    await create_session(owner, user, title=None)
    session = (await client.get(f"/api/{user.tenant_id}/sessions", headers=user.headers)).json()["sessions"][0]
    assert session["agent_name"] is None
    assert session["title"] is None
    assert session["message_count"] == 0


@pytest.mark.parametrize(
    ("created_hours_ago", "message_hours_ago", "active"),
    [(23, None, True), (25, None, False), (48, 23, True), (48, 25, False), (1, None, True)],
)
async def test_is_active_follows_the_24_hour_rule(
    client, owner, settings, created_hours_ago: float, message_hours_ago: float | None, active: bool
) -> None:
    user = await fresh_user(owner, settings)
    now = datetime.now(UTC)
    session = await create_session(owner, user, created_at=now - timedelta(hours=created_hours_ago))
    if message_hours_ago is not None:
        await add_message(owner, user.tenant_id, session, created_at=now - timedelta(hours=message_hours_ago))
    body = (await client.get(f"/api/{user.tenant_id}/sessions", headers=user.headers)).json()
    assert body["sessions"][0]["is_active"] is active


async def test_is_active_is_computed_at_read_time(client, owner, settings) -> None:
    user = await fresh_user(owner, settings)
    session = await create_session(owner, user, created_at=datetime.now(UTC) - timedelta(hours=2))
    path = f"/api/{user.tenant_id}/sessions"
    assert (await client.get(path, headers=user.headers)).json()["sessions"][0]["is_active"] is True
    # The same row, seen later: only the clock moved (the session's own timestamps are shifted back).
    await owner.execute("UPDATE sessions SET created_at = created_at - interval '1 day' WHERE session_id = $1", session)
    assert (await client.get(path, headers=user.headers)).json()["sessions"][0]["is_active"] is False


@pytest.mark.parametrize("title", ["x" * 255, "ü" * 255, "日本語" * 85])
async def test_255_character_titles_come_back_whole(client, owner, settings, title: str) -> None:
    user = await fresh_user(owner, settings)
    await create_session(owner, user, title=title)
    session = (await client.get(f"/api/{user.tenant_id}/sessions", headers=user.headers)).json()["sessions"][0]
    assert session["title"] == title
    assert len(session["title"]) == 255


async def test_message_count_is_exact_at_read_time(client, owner, settings) -> None:
    user = await fresh_user(owner, settings)
    session = await create_session(owner, user)
    path = f"/api/{user.tenant_id}/sessions"
    for expected in range(1, 4):
        await add_message(owner, user.tenant_id, session, f"m{expected}")
        assert (await client.get(path, headers=user.headers)).json()["sessions"][0]["message_count"] == expected


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"sort_by": "title"}, "sort_by"),
        ({"sort_by": "updated_at;drop table sessions"}, "sort_by"),
        ({"order": "up"}, "order"),
        ({"order": "DESC "}, "order"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"user_id": "1; select 1"}, "user_id"),
    ],
)
async def test_malformed_parameters_are_400_naming_the_field(
    client, world: World, params: dict[str, Any], field: str
) -> None:
    response = await client.get(world.a.path(), headers=world.a.admin.headers, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert field in body["detail"]
    assert "Traceback" not in response.text
    assert "SELECT" not in response.text


# -- /me -------------------------------------------------------------------------------------


async def test_me_reports_the_role_from_the_database_not_the_token(client, world: World) -> None:
    from tests.factories import make_token

    token = make_token(world.secret, world.a.alice.user_id, world.a.tenant_id, role="admin")
    response = await client.get(world.a.path("me"), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "user_id": str(world.a.alice.user_id),
        "tenant_id": str(world.a.tenant_id),
        "email": world.a.alice.email,
        "display_name": world.a.alice.email.split("@")[0],
        "role": "supporter",
    }
    # ... and the list follows the database role too: alice still sees only her own sessions.
    listing = await client.get(world.a.path(), headers={"Authorization": f"Bearer {token}"})
    assert listing.json()["total"] == 3
