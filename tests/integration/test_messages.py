"""A session's history: GET/POST /sessions/{session_id}/messages, titles, counters and concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.contract import SHAPES, assert_names_field, when
from tests.factories import TestTenant, TestUser, World, add_message, create_session
from tests.polling import wait_for_lock_waiters

MESSAGE_FIELDS = {"message_id", "session_id", "role", "content", "created_at"}


async def post_message(
    client: Any, tenant: TestTenant, user: TestUser, session_id: Any, role: str, content: str
) -> Any:
    return await client.post(
        tenant.path(f"sessions/{session_id}/messages"), headers=user.headers, json={"role": role, "content": content}
    )


async def new_session(client: Any, tenant: TestTenant, user: TestUser, **body: Any) -> str:
    response = await client.post(tenant.path(), headers=user.headers, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["session_id"])


# -- GET /sessions/{session_id}/messages ---------------------------------------------------------


async def test_history_pages_oldest_first_with_ties_broken_by_id(client, world: World, owner) -> None:
    a = world.a
    session_id = await create_session(owner, a.alice, title="history")
    start = datetime.now(UTC) - timedelta(hours=1)
    for index in range(7):
        # Messages 3 and 4 share a timestamp: the id decides their order.
        at = start + timedelta(seconds=index if index != 4 else 3)
        await add_message(
            owner, a.tenant_id, session_id, f"m{index}", role="user" if index % 2 else "assistant", created_at=at
        )
    expected = [
        r["message_id"]
        for r in await owner.fetch(
            "SELECT message_id FROM messages WHERE session_id = $1 ORDER BY created_at, message_id", session_id
        )
    ]
    seen: list[uuid.UUID] = []
    for offset, more in ((0, True), (3, True), (6, False)):
        response = await client.get(
            a.path(f"sessions/{session_id}/messages"), headers=a.alice.headers, params={"limit": 3, "offset": offset}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == SHAPES["MessageListResponse"]
        assert (body["total"], body["limit"], body["offset"], body["has_more"]) == (7, 3, offset, more)
        for message in body["messages"]:
            assert set(message) == MESSAGE_FIELDS
            assert message["session_id"] == str(session_id)
            when(message["created_at"])
        seen += [uuid.UUID(m["message_id"]) for m in body["messages"]]
    assert seen == expected
    assert len(seen) == 7
    contents = [m["content"] for m in body["messages"]]
    assert contents == ["m6"]


async def test_history_defaults_and_an_offset_past_the_end(client, world: World) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][1]
    path = a.path(f"sessions/{session_id}/messages")
    body = (await client.get(path, headers=a.alice.headers)).json()
    assert (body["total"], body["limit"], body["offset"], body["has_more"]) == (2, 50, 0, False)
    assert [m["content"] for m in body["messages"]] == ["A message 0", "A message 1"]
    past = (await client.get(path, headers=a.alice.headers, params={"offset": 10})).json()
    assert (past["messages"], past["total"], past["has_more"]) == ([], 2, False)


async def test_history_of_a_session_without_messages_is_an_empty_page(client, world: World) -> None:
    a = world.a
    session_id = await new_session(client, a, a.bob)
    response = await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.bob.headers)
    assert response.status_code == 200
    assert response.json() == {
        "messages": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "has_more": False,
        "next_cursor": None,
    }


async def test_admin_reads_a_supporters_history(client, world: World) -> None:
    a = world.a
    session_id = a.sessions[a.bob.user_id][1]
    response = await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.admin.headers)
    assert response.status_code == 200
    assert response.json()["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
async def test_history_parameters_out_of_range_are_400(client, world: World, params, field) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    response = await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.alice.headers, params=params)
    assert_names_field(response, field)


async def test_history_limit_200_is_allowed(client, world: World) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    response = await client.get(
        a.path(f"sessions/{session_id}/messages"), headers=a.alice.headers, params={"limit": 200}
    )
    assert response.status_code == 200
    assert response.json()["limit"] == 200


async def test_history_of_an_unknown_session_is_404(client, world: World) -> None:
    response = await client.get(world.a.path(f"sessions/{uuid.uuid4()}/messages"), headers=world.a.alice.headers)
    assert response.status_code == 404


# -- POST /sessions/{session_id}/messages --------------------------------------------------------


@pytest.mark.parametrize("role", ["user", "assistant", "system", "tool"])
async def test_add_message_stores_it_counts_it_and_moves_updated_at(client, world: World, owner, role) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    before = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    response = await post_message(client, a, a.alice, session_id, role, "Where is shipment 4711?")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == MESSAGE_FIELDS
    assert (body["session_id"], body["role"], body["content"]) == (str(session_id), role, "Where is shipment 4711?")
    row = await owner.fetchrow("SELECT * FROM messages WHERE message_id = $1", uuid.UUID(body["message_id"]))
    assert (row["tenant_id"], row["session_id"], row["role"]) == (a.tenant_id, session_id, role)
    assert when(body["created_at"]) == row["created_at"]
    after = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    assert after["message_count"] == before["message_count"] + 1
    assert after["updated_at"] == row["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert after["title"] == before["title"]  # an explicit title stays
    shown = (await client.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers)).json()
    assert shown["message_count"] == after["message_count"]
    assert when(shown["updated_at"]) == row["created_at"]


async def test_content_of_32768_characters_is_accepted(client, world: World, owner) -> None:
    a = world.a
    session_id = await new_session(client, a, a.alice, title="long")
    response = await post_message(client, a, a.alice, session_id, "tool", "ü" * 32_768)
    assert response.status_code == 201
    stored = await owner.fetchval(
        "SELECT content FROM messages WHERE message_id = $1", uuid.UUID(response.json()["message_id"])
    )
    assert len(stored) == 32_768


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"role": "bot", "content": "hi"}', "role"),
        (b'{"role": "USER", "content": "hi"}', "role"),
        (b'{"content": "hi"}', "role"),
        (b'{"role": "user", "content": ""}', "content"),
        (b'{"role": "user", "content": " \\n\\t "}', "content"),
        (b'{"role": "user", "content": "' + b"x" * 32_769 + b'"}', "content"),
        (b'{"role": "user"}', "content"),
        (b'{"role": "user", "content": 7}', "content"),
        (b'{"role": "user", "content": "hi", "tenant_id": "x"}', "tenant_id"),
        (b"role=user&content=hi", "JSON"),
        (b"", "data"),
    ],
)
async def test_bad_messages_are_400_naming_the_field_and_store_nothing(
    client, world: World, owner, content, field
) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    before = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
    headers = {**a.alice.headers, "Content-Type": "application/json"}
    response = await client.post(a.path(f"sessions/{session_id}/messages"), headers=headers, content=content)
    assert_names_field(response, field)
    assert "Traceback" not in response.text
    assert await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id) == before
    assert await owner.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", session_id) == 1


async def test_add_message_to_an_unknown_session_is_404(client, world: World) -> None:
    response = await post_message(client, world.a, world.a.alice, uuid.uuid4(), "user", "hi")
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "session not found"}


# -- titles from the first user message ----------------------------------------------------------

QUICK = " ".join(["The quick brown fox jumps over the lazy dog"] * 3)  # 131 characters


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("  Where   is\tshipment\n\n 4711?  ", "Where is shipment 4711?"),
        ("a" * 39 + " " + "b" * 40, "a" * 39 + " " + "b" * 40),  # exactly 80: kept whole
        ("a" * 39 + "  \n " + "b" * 40, "a" * 39 + " " + "b" * 40),  # 80 once whitespace collapsed
        ("a" * 39 + " " + "b" * 41, "a" * 39 + "…"),  # 81: the whole words within 79, then …
        (QUICK, "The quick brown fox jumps over the lazy dog The quick brown fox jumps over the…"),
        ("x" * 79 + " tail", "x" * 79 + "…"),  # a run of exactly 79 characters
        ("y" * 100 + " more words", "y" * 79 + "…"),  # a first word over 79 is cut at 79
        ("é" * 100, "é" * 79 + "…"),  # characters, not bytes
    ],
)
async def test_first_user_message_titles_an_untitled_session(client, world: World, owner, content, title) -> None:
    a = world.a
    session_id = await new_session(client, a, a.bob)
    response = await post_message(client, a, a.bob, session_id, "user", content)
    assert response.status_code == 201, response.text
    shown = (await client.get(a.path(f"sessions/{session_id}"), headers=a.bob.headers)).json()
    assert shown["title"] == title
    assert len(shown["title"]) <= 80
    assert await owner.fetchval("SELECT title FROM sessions WHERE session_id = $1", uuid.UUID(session_id)) == title


async def test_only_the_first_user_message_titles_and_never_over_an_explicit_title(client, world: World) -> None:
    a = world.a
    untitled = await new_session(client, a, a.alice)
    assert (await post_message(client, a, a.alice, untitled, "system", "You are helpful")).status_code == 201
    assert (await post_message(client, a, a.alice, untitled, "assistant", "Hello!")).status_code == 201
    path = a.path(f"sessions/{untitled}")
    assert (await client.get(path, headers=a.alice.headers)).json()["title"] is None
    assert (await post_message(client, a, a.alice, untitled, "user", "Invoice 2025-118")).status_code == 201
    assert (await post_message(client, a, a.alice, untitled, "user", "Another question")).status_code == 201
    body = (await client.get(path, headers=a.alice.headers)).json()
    assert body["title"] == "Invoice 2025-118"
    assert body["message_count"] == 4
    titled = await new_session(client, a, a.alice, title="Mine")
    assert (await post_message(client, a, a.alice, titled, "user", "Something else")).status_code == 201
    assert (await client.get(a.path(f"sessions/{titled}"), headers=a.alice.headers)).json()["title"] == "Mine"


# -- concurrency and the whole flow --------------------------------------------------------------


async def test_50_concurrent_posts_are_all_stored_and_counted(client, world: World, owner) -> None:
    a = world.a
    session_id = await new_session(client, a, a.alice)
    responses = await asyncio.gather(
        *(post_message(client, a, a.alice, session_id, "user", f"message {n}") for n in range(50))
    )
    assert [r.status_code for r in responses] == [201] * 50
    sid = uuid.UUID(session_id)
    rows = await owner.fetch("SELECT content, created_at FROM messages WHERE session_id = $1", sid)
    assert sorted(r["content"] for r in rows) == sorted(f"message {n}" for n in range(50))
    session = await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", sid)
    assert session["message_count"] == 50
    newest = max(r["created_at"] for r in rows)
    assert session["updated_at"] == newest
    assert session["last_message_at"] == newest
    # The title is the first user message in commit order: one of the fifty.
    assert session["title"] in {f"message {n}" for n in range(50)}
    history = (await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.alice.headers)).json()
    assert history["total"] == 50
    assert history["has_more"] is False
    assert [when(m["created_at"]) for m in history["messages"]] == sorted(r["created_at"] for r in rows)


async def test_end_to_end_create_add_list_history(client, world: World, owner: asyncpg.Pool) -> None:
    a = world.a
    session_id = await new_session(client, a, a.alice, agent_id=str(a.agents["ShipmentAgent"]))
    turns = [
        ("user", "Where is shipment 4711?"),
        ("assistant", "It left the Hamburg hub this morning."),
        ("user", "When will it arrive?"),
        ("assistant", "Tomorrow before noon."),
    ]
    for role, content in turns:
        response = await post_message(client, a, a.alice, session_id, role, content)
        assert response.status_code == 201, response.text
    listing = (await client.get(a.path(), headers=a.alice.headers)).json()
    first = listing["sessions"][0]
    assert first["session_id"] == session_id
    assert first["message_count"] == 4
    assert first["title"] == "Where is shipment 4711?"
    assert first["agent_name"] == "ShipmentAgent"
    assert first["is_active"] is True
    assert listing["total"] == 4
    history = (await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.alice.headers)).json()
    assert [(m["role"], m["content"]) for m in history["messages"]] == turns
    assert history["total"] == 4
    # The admin's view of the tenant shows it first too.
    tenant_view = (await client.get(a.path(), headers=a.admin.headers)).json()
    assert tenant_view["sessions"][0]["session_id"] == session_id


async def test_a_message_racing_the_deletion_of_its_session_is_404_not_500(client, world: World, owner) -> None:
    alice = world.a.alice
    session_id = await create_session(owner, alice, title="about to go")
    async with owner.acquire() as deleting:
        transaction = deleting.transaction()
        await transaction.start()
        await deleting.execute("DELETE FROM sessions WHERE session_id = $1", session_id)
        # The post sees the session (the delete is not committed) and waits on its row lock.
        post = asyncio.create_task(
            client.post(
                f"{world.a.path()}/{session_id}/messages", headers=alice.headers, json={"role": "user", "content": "hi"}
            )
        )
        await wait_for_lock_waiters(owner, 1)
        assert not post.done()
        await transaction.commit()
    response = await post
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "session not found"}
    assert await owner.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", session_id) == 0
