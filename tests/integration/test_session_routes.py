"""GET/POST/PATCH/DELETE of one session, and the agents list, over HTTP on real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.contract import SHAPES, assert_names_field, when
from tests.factories import AGENT_NAMES, World


async def count_sessions(owner: asyncpg.Pool, user_id: uuid.UUID) -> int:
    return int(await owner.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", user_id))


# -- GET /sessions/{session_id} ----------------------------------------------------------------


async def test_get_own_session_has_exactly_the_contract_fields(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][2]
    response = await client.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == SHAPES["SessionInfo"]
    row = await owner.fetchrow(
        """SELECT s.*, a.name AS agent_name FROM sessions s
           LEFT JOIN agent_configs a ON a.agent_id = s.agent_id WHERE s.session_id = $1""",
        session_id,
    )
    assert body["session_id"] == str(session_id)
    assert body["user_id"] == str(a.alice.user_id)
    assert body["title"] == row["title"]
    assert body["agent_name"] == row["agent_name"] == AGENT_NAMES[2]
    assert body["message_count"] == 3 == row["message_count"]
    assert when(body["created_at"]) == row["created_at"]
    assert when(body["updated_at"]) == row["updated_at"]
    # The factory's third session started 61 hours ago, its last message two minutes later.
    assert body["is_active"] is False


async def test_admin_reads_a_supporters_session(client, world: World) -> None:
    a = world.a
    session_id = a.sessions[a.bob.user_id][0]
    response = await client.get(a.path(f"sessions/{session_id}"), headers=a.admin.headers)
    assert response.status_code == 200
    assert response.json()["user_id"] == str(a.bob.user_id)


async def test_unknown_session_is_404(client, world: World) -> None:
    response = await client.get(world.a.path(f"sessions/{uuid.uuid4()}"), headers=world.a.alice.headers)
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "session not found"}


@pytest.mark.parametrize(
    ("method", "rest", "body"),
    [
        ("GET", "sessions/{}", None),
        ("PATCH", "sessions/{}", {"title": "x"}),
        ("DELETE", "sessions/{}", None),
        ("GET", "sessions/{}/messages", None),
        ("POST", "sessions/{}/messages", {"role": "user", "content": "hi"}),
    ],
)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "6a1e0b8c-0000-0000-0000-zzzzzzzzzzzz"])
async def test_malformed_session_id_is_400_naming_it(client, world: World, method, rest, body, bad_id) -> None:
    response = await client.request(method, world.a.path(rest.format(bad_id)), headers=world.a.alice.headers, json=body)
    assert_names_field(response, "session_id")


# -- POST /sessions ------------------------------------------------------------------------------


async def test_create_without_body_makes_an_untitled_session_of_the_caller(client, world: World, owner) -> None:
    a = world.a
    before = await count_sessions(owner, a.bob.user_id)
    response = await client.post(a.path(), headers=a.bob.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == SHAPES["SessionInfo"]
    assert body["user_id"] == str(a.bob.user_id)
    assert body["title"] is None
    assert body["agent_name"] is None
    assert body["message_count"] == 0
    assert body["is_active"] is True
    assert when(body["created_at"]) == when(body["updated_at"])
    row = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", uuid.UUID(body["session_id"]))
    assert row["tenant_id"] == a.tenant_id
    assert row["user_id"] == a.bob.user_id
    assert row["title"] is None
    assert await count_sessions(owner, a.bob.user_id) == before + 1


async def test_create_with_title_and_agent(client, world: World, owner) -> None:
    a = world.a
    response = await client.post(
        a.path(), headers=a.admin.headers, json={"title": "Customs question", "agent_id": str(a.agents["DebtAgent"])}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["title"] == "Customs question"
    assert body["agent_name"] == "DebtAgent"
    assert body["user_id"] == str(a.admin.user_id)
    row = await owner.fetchrow(
        "SELECT agent_id, user_id FROM sessions WHERE session_id = $1", uuid.UUID(body["session_id"])
    )
    assert row["agent_id"] == a.agents["DebtAgent"]
    assert row["user_id"] == a.admin.user_id


async def test_empty_json_body_is_accepted(client, world: World) -> None:
    response = await client.post(world.a.path(), headers=world.a.alice.headers, json={})
    assert response.status_code == 201
    assert response.json()["title"] is None


async def test_an_explicit_title_over_255_characters_is_cut_to_255_characters(client, world: World, owner) -> None:
    title = "é" * 200 + "ß" * 100  # 300 characters, 600 bytes in UTF-8
    response = await client.post(world.a.path(), headers=world.a.alice.headers, json={"title": title})
    assert response.status_code == 201, response.text
    assert response.json()["title"] == title[:255]
    stored = await owner.fetchval(
        "SELECT title FROM sessions WHERE session_id = $1", uuid.UUID(response.json()["session_id"])
    )
    assert stored == title[:255]
    assert len(stored) == 255


@pytest.mark.parametrize("which", ["other tenant", "unknown"])
async def test_agent_not_of_the_tenant_is_400_and_nothing_is_created(client, world: World, owner, which) -> None:
    a = world.a
    agent_id = world.b.agents["DebtAgent"] if which == "other tenant" else uuid.uuid4()
    before = await count_sessions(owner, a.alice.user_id)
    response = await client.post(a.path(), headers=a.alice.headers, json={"agent_id": str(agent_id)})
    assert_names_field(response, "agent_id")
    assert await count_sessions(owner, a.alice.user_id) == before


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"not json", "JSON"),
        (b'{"title": "x"', "truncated"),
        (b'{"title": 5}', "title"),
        (b'{"agent_id": "nope"}', "agent_id"),
        (b'{"title": "x", "owner": "me"}', "owner"),
        (b'["title"]', "request body"),
    ],
)
async def test_bad_create_bodies_are_400_naming_the_field(client, world: World, owner, content, field) -> None:
    a = world.a
    before = await count_sessions(owner, a.alice.user_id)
    headers = {**a.alice.headers, "Content-Type": "application/json"}
    response = await client.post(a.path(), headers=headers, content=content)
    assert_names_field(response, field)
    assert await count_sessions(owner, a.alice.user_id) == before


# -- PATCH /sessions/{session_id} ----------------------------------------------------------------


async def test_rename_sets_the_title_and_moves_updated_at(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][1]
    before = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    response = await client.patch(a.path(f"sessions/{session_id}"), headers=a.alice.headers, json={"title": "Renamed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == SHAPES["SessionInfo"]
    assert body["title"] == "Renamed"
    assert body["message_count"] == before["message_count"]
    after = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    assert after["title"] == "Renamed"
    assert after["updated_at"] > before["updated_at"]
    assert when(body["updated_at"]) == after["updated_at"]
    assert after["created_at"] == before["created_at"]


async def test_rename_cuts_to_255_and_null_clears(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.bob.user_id][0]
    path = a.path(f"sessions/{session_id}")
    response = await client.patch(path, headers=a.bob.headers, json={"title": "日本" * 200})
    assert response.status_code == 200
    assert response.json()["title"] == ("日本" * 200)[:255]
    response = await client.patch(path, headers=a.bob.headers, json={"title": None})
    assert response.status_code == 200
    assert response.json()["title"] is None
    assert await owner.fetchval("SELECT title FROM sessions WHERE session_id = $1", session_id) is None


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{", "truncated"),
        (b"{}", "title"),
        (b'{"title": 1}', "title"),
        (b'{"title": "x", "user_id": "00000000-0000-0000-0000-000000000000"}', "user_id"),
    ],
)
async def test_bad_rename_bodies_are_400_and_change_nothing(client, world: World, owner, content, field) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    before = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    headers = {**a.alice.headers, "Content-Type": "application/json"}
    response = await client.patch(a.path(f"sessions/{session_id}"), headers=headers, content=content)
    assert_names_field(response, field)
    assert await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id) == before


async def test_rename_unknown_session_is_404(client, world: World) -> None:
    response = await client.patch(
        world.a.path(f"sessions/{uuid.uuid4()}"), headers=world.a.alice.headers, json={"title": "x"}
    )
    assert response.status_code == 404


# -- DELETE /sessions/{session_id} ---------------------------------------------------------------


async def test_delete_removes_the_session_and_its_messages(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][2]
    assert await owner.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", session_id) == 3
    response = await client.delete(a.path(f"sessions/{session_id}"), headers=a.alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await owner.fetchval("SELECT count(*) FROM sessions WHERE session_id = $1", session_id) == 0
    assert await owner.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", session_id) == 0
    # Gone: a second delete, a read and the history are 404.
    for method, rest in (("DELETE", ""), ("GET", ""), ("GET", "/messages")):
        again = await client.request(method, a.path(f"sessions/{session_id}{rest}"), headers=a.alice.headers)
        assert again.status_code == 404, (method, rest)
    # The user's other sessions are untouched.
    assert await count_sessions(owner, a.alice.user_id) == 2


# -- GET /agents ---------------------------------------------------------------------------------


async def test_agents_lists_the_tenants_agents_by_name(client, world: World) -> None:
    a = world.a
    for user in (a.alice, a.admin):
        response = await client.get(a.path("agents"), headers=user.headers)
        assert response.status_code == 200
        agents = response.json()
        assert [x["name"] for x in agents] == sorted(AGENT_NAMES)
        assert all(set(x) == {"agent_id", "name", "description"} for x in agents)
        assert {x["name"]: uuid.UUID(x["agent_id"]) for x in agents} == a.agents
        assert {x["description"] for x in agents} == {f"{name} of A" for name in AGENT_NAMES}


async def test_agents_of_another_tenant_are_403_on_its_path(client, world: World) -> None:
    response = await client.get(world.a.path("agents"), headers=world.b.alice.headers)
    assert response.status_code == 403
    assert str(world.a.agents["DebtAgent"]) not in response.text
