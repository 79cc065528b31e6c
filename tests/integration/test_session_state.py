"""Pinned and archived sessions (contract §5): PATCH subsets, bulk archive, the filters and their exact totals."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg
import pytest

from tests.contract import SHAPES, assert_names_field, when
from tests.factories import TestTenant, TestUser, World, create_session

ARCHIVED = ("false", "true", "all")
PINNED: tuple[str | None, ...] = (None, "true", "false")


async def patch(client: Any, tenant: TestTenant, user: TestUser, session_id: uuid.UUID, body: Any) -> Any:
    return await client.patch(tenant.path(f"sessions/{session_id}"), headers=user.headers, json=body)


async def listing(client: Any, tenant: TestTenant, user: TestUser, **params: Any) -> dict[str, Any]:
    params = {key: value for key, value in params.items() if value is not None}
    response = await client.get(tenant.path(), headers=user.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def row(owner: asyncpg.Pool, session_id: uuid.UUID) -> asyncpg.Record:
    return await owner.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)


# -- PATCH: any non-empty subset of {title, pinned, archived} -------------------------------


async def test_pinning_and_archiving_do_not_move_updated_at_but_a_title_does(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    before = await row(owner, session_id)
    for body in ({"pinned": True}, {"archived": True}, {"pinned": False, "archived": False}, {"archived": True}):
        response = await patch(client, a, a.alice, session_id, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == SHAPES["SessionInfo"]
        assert {key: answer[key] for key in body} == body
        assert answer["snippet"] is None
        assert when(answer["updated_at"]) == before["updated_at"]
        assert answer["title"] == before["title"]
    after = await row(owner, session_id)
    assert (after["pinned"], after["archived"], after["updated_at"]) == (False, True, before["updated_at"])
    response = await patch(client, a, a.alice, session_id, {"title": "Renamed", "pinned": True})
    assert response.status_code == 200
    renamed = await row(owner, session_id)
    assert (renamed["title"], renamed["pinned"], renamed["archived"]) == ("Renamed", True, True)
    assert renamed["updated_at"] > before["updated_at"]
    assert when(response.json()["updated_at"]) == renamed["updated_at"]


async def test_a_title_alone_leaves_the_flags_as_they_are(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.bob.user_id][0]
    await patch(client, a, a.bob, session_id, {"pinned": True, "archived": True})
    response = await patch(client, a, a.bob, session_id, {"title": None})
    assert response.status_code == 200
    assert (response.json()["pinned"], response.json()["archived"], response.json()["title"]) == (True, True, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"pinned": None}, "pinned"),
        ({"archived": "yes"}, "archived"),
        ({"pinned": 1}, "pinned"),
        ({"pinned": "true"}, "pinned"),
        ({"archived": "-0"}, "archived"),
        ({"title": "x", "archived": 0}, "archived"),
        ({"starred": True}, "starred"),
        ([], "body"),
    ],
)
async def test_a_patch_that_sets_nothing_valid_is_a_400(client, world: World, owner, body: Any, field: str) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][1]
    before = await row(owner, session_id)
    response = await patch(client, a, a.alice, session_id, body)
    assert_names_field(response, field)
    assert await row(owner, session_id) == before


async def test_only_the_owner_may_pin_or_archive(client, world: World, owner) -> None:
    a, b = world.a, world.b
    alices = a.sessions[a.alice.user_id][0]
    for body in ({"pinned": True}, {"archived": True}):
        assert (await patch(client, a, a.admin, alices, body)).status_code == 403  # readable, not theirs
        assert (await patch(client, a, a.bob, alices, body)).status_code == 404  # not readable
        assert (await patch(client, b, b.admin, alices, body)).status_code == 404  # another tenant
        assert (await patch(client, a, a.alice, uuid.uuid4(), body)).status_code == 404
    assert (await row(owner, alices))["pinned"] is False
    assert (await row(owner, alices))["archived"] is False


# -- POST /sessions/archive -------------------------------------------------------------------


async def test_bulk_archive_archives_only_the_callers_own_and_counts_the_newly_archived(
    client, world: World, owner
) -> None:
    a, b = world.a, world.b
    mine = a.sessions[a.alice.user_id]
    foreign = [a.sessions[a.bob.user_id][0], a.sessions[a.admin.user_id][0], b.sessions[b.alice.user_id][0]]
    await patch(client, a, a.alice, mine[0], {"archived": True})
    before = {s: await row(owner, s) for s in mine + foreign}
    ids = [str(s) for s in [*mine, *foreign, uuid.uuid4()]]
    response = await client.post(a.path("sessions/archive"), headers=a.alice.headers, json={"session_ids": ids})
    assert response.status_code == 200, response.text
    assert response.json() == {"archived": len(mine) - 1}
    assert set(response.json()) == SHAPES["ArchiveResult"]
    assert response.headers.get("X-Read-After")
    for session_id in mine:
        after = await row(owner, session_id)
        assert after["archived"] is True
        assert after["updated_at"] == before[session_id]["updated_at"]
    for session_id in foreign:
        assert await row(owner, session_id) == before[session_id]
    again = await client.post(a.path("sessions/archive"), headers=a.alice.headers, json={"session_ids": ids})
    assert again.json() == {"archived": 0}
    # An admin's bulk archive ignores the tenant's other sessions too.
    response = await client.post(a.path("sessions/archive"), headers=a.admin.headers, json={"session_ids": ids})
    assert response.json() == {"archived": 1}
    assert (await row(owner, a.sessions[a.bob.user_id][0]))["archived"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"session_ids": []},
        {"session_ids": [str(uuid.uuid4()) for _ in range(101)]},
        {"session_ids": ["not-a-uuid"]},
        {"session_ids": [str(uuid.UUID(int=7))] * 2},
        {"session_ids": [str(uuid.UUID(int=7)), str(uuid.UUID(int=7)).upper()]},
        {"session_ids": None},
        {},
    ],
)
async def test_bulk_archive_refuses_a_bad_list_naming_session_ids(client, world: World, body: Any) -> None:
    response = await client.post(world.a.path("sessions/archive"), headers=world.a.alice.headers, json=body)
    assert_names_field(response, "session_ids")


async def test_bulk_archive_of_one_hundred_ids_is_accepted(client, world: World) -> None:
    ids = [str(uuid.uuid4()) for _ in range(99)] + [str(world.a.sessions[world.a.bob.user_id][1])]
    response = await client.post(
        world.a.path("sessions/archive"), headers=world.a.bob.headers, json={"session_ids": ids}
    )
    assert response.json() == {"archived": 1}


# -- filters: archived, pinned, agent_id, with exact totals ------------------------------------


async def arrange(client: Any, world: World, owner: asyncpg.Pool) -> None:
    """Every (pinned, archived) state among alice's and the admin's sessions, and more sessions per agent."""
    a = world.a
    agents = list(a.agents.values())
    for index in range(6):
        for user in (a.alice, a.admin):
            session_id = await create_session(owner, user, title=f"extra {index}", agent_id=agents[index % 2])
            a.sessions[user.user_id].append(session_id)
    for index, session_id in enumerate(a.sessions[a.alice.user_id] + a.sessions[a.admin.user_id]):
        body = {"pinned": index % 2 == 0, "archived": index % 3 == 0}
        user = a.alice if session_id in a.sessions[a.alice.user_id] else a.admin
        assert (await patch(client, a, user, session_id, body)).status_code == 200


async def expected(
    owner: asyncpg.Pool, tenant: TestTenant, user_id: uuid.UUID | None, **filters: Any
) -> list[uuid.UUID]:
    conditions, args = ["tenant_id = $1"], [tenant.tenant_id]
    if user_id is not None:
        args.append(user_id)
        conditions.append(f"user_id = ${len(args)}")
    if filters.get("archived", "false") != "all":
        conditions.append(f"archived = {filters.get('archived', 'false')}")
    if filters.get("pinned") is not None:
        conditions.append(f"pinned = {filters['pinned']}")
    if filters.get("agent_id") is not None:
        args.append(filters["agent_id"])
        conditions.append(f"agent_id = ${len(args)}")
    rows = await owner.fetch(
        f"SELECT session_id FROM sessions WHERE {' AND '.join(conditions)} ORDER BY updated_at DESC, session_id DESC",
        *args,
    )
    return [r["session_id"] for r in rows]


async def test_every_filter_combination_lists_exactly_its_sessions_with_an_exact_total(
    client, world: World, owner
) -> None:
    a = world.a
    await arrange(client, world, owner)
    agent = next(iter(a.agents.values()))
    who: list[tuple[TestUser, uuid.UUID | None]] = [(a.alice, None), (a.admin, None), (a.admin, a.alice.user_id)]
    for (user, named), archived, pinned, agent_id in itertools.product(who, ARCHIVED, PINNED, (None, agent)):
        params = {"archived": archived, "pinned": pinned, "agent_id": agent_id, "user_id": named, "limit": 100}
        body = await listing(client, a, user, **params)
        scope = named if user.role == "admin" else user.user_id
        want = await expected(owner, a, scope, archived=archived, pinned=pinned, agent_id=agent_id)
        assert [uuid.UUID(s["session_id"]) for s in body["sessions"]] == want, params
        assert body["total"] == len(want), params
        assert body["has_more"] is False
        for session in body["sessions"]:
            assert archived == "all" or session["archived"] is (archived == "true")
            assert pinned is None or session["pinned"] is (pinned == "true")
    # The default is archived=false, and small pages add up to the same total.
    assert await listing(client, a, a.alice) == await listing(client, a, a.alice, archived="false")
    page = await listing(client, a, a.admin, archived="all", pinned="true", limit=2, offset=1)
    want = await expected(owner, a, None, archived="all", pinned="true")
    assert [uuid.UUID(s["session_id"]) for s in page["sessions"]] == want[1:3]
    assert (page["total"], page["has_more"]) == (len(want), len(want) > 3)


async def test_totals_stay_exact_as_sessions_change_state_and_go(client, world: World, owner) -> None:
    a = world.a
    await arrange(client, world, owner)
    mine = a.sessions[a.alice.user_id]
    await client.post(a.path("sessions/archive"), headers=a.alice.headers, json={"session_ids": [str(mine[1])]})
    await patch(client, a, a.alice, mine[2], {"pinned": False, "archived": False})
    assert (await client.delete(a.path(f"sessions/{mine[0]}"), headers=a.alice.headers)).status_code == 204
    created = await client.post(a.path(), headers=a.alice.headers, json={"title": "new"})
    await patch(client, a, a.alice, uuid.UUID(created.json()["session_id"]), {"pinned": True})
    for user, archived, pinned in itertools.product((a.alice, a.admin), ARCHIVED, PINNED):
        body = await listing(client, a, user, archived=archived, pinned=pinned)
        scope = None if user.role == "admin" else user.user_id
        assert body["total"] == len(await expected(owner, a, scope, archived=archived, pinned=pinned))
    counters = await owner.fetch(
        """SELECT c.sessions, c.archived, c.pinned, c.pinned_archived,
                  count(s.*) AS s, count(s.*) FILTER (WHERE s.archived) AS sa, count(s.*) FILTER (WHERE s.pinned) AS sp,
                  count(s.*) FILTER (WHERE s.pinned AND s.archived) AS spa
           FROM session_counts c LEFT JOIN sessions s ON s.tenant_id = c.tenant_id AND s.user_id = c.user_id
           WHERE c.tenant_id = $1 GROUP BY c.tenant_id, c.user_id""",
        a.tenant_id,
    )
    for counter in counters:
        assert tuple(counter.values())[:4] == tuple(counter.values())[4:]


async def test_agent_id_of_no_agent_of_the_tenant_lists_nothing_and_a_malformed_one_is_a_400(
    client, world: World
) -> None:
    a, b = world.a, world.b
    for agent_id in (uuid.uuid4(), next(iter(b.agents.values()))):
        body = await listing(client, a, a.admin, agent_id=str(agent_id), archived="all")
        assert (body["sessions"], body["total"], body["has_more"], body["next_cursor"]) == ([], 0, False, None)
    for value in ("nope", "1", str(uuid.uuid4()).replace("-", "")):
        response = await client.get(a.path(), headers=a.admin.headers, params={"agent_id": value})
        assert_names_field(response, "agent_id")


@pytest.mark.parametrize(
    ("name", "value"),
    [("archived", "yes"), ("archived", ""), ("archived", "FALSE"), ("pinned", "maybe"), ("pinned", "")]
    + [("pinned", spelling) for spelling in ("1", "0", "-0", "True", "TRUE", "yes", "t")],
)
async def test_a_malformed_flag_is_a_400_naming_it(client, world: World, name: str, value: str) -> None:
    response = await client.get(world.a.path(), headers=world.a.alice.headers, params={name: value})
    assert_names_field(response, name)


async def test_a_supporter_filtering_still_names_only_themselves(client, world: World) -> None:
    a = world.a
    params = {"user_id": str(a.bob.user_id), "archived": "all", "pinned": "true"}
    assert (await client.get(a.path(), headers=a.alice.headers, params=params)).status_code == 403
