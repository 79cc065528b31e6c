"""GET /api/{tenant_id}/users (contract §5): admins only, the tenant's users by name, paged."""

from __future__ import annotations

import uuid

import pytest

from tests.contract import SHAPES, assert_names_field
from tests.factories import World, create_user


async def test_an_admin_lists_the_tenants_users_by_name_then_id(client, world: World, owner) -> None:
    a, b = world.a, world.b
    for _ in range(2):  # two users with one display name: ordered by id
        twin = await create_user(owner, a.tenant_id, "supporter", world.secret)
        await owner.execute("UPDATE users SET display_name = 'Zoë Twin' WHERE user_id = $1", twin.user_id)
    response = await client.get(a.path("users"), headers=a.admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == SHAPES["UserListResponse"]
    rows = await owner.fetch(
        "SELECT user_id, email, display_name, role FROM users WHERE tenant_id = $1 ORDER BY display_name, user_id",
        a.tenant_id,
    )
    assert body["users"] == [{**dict(r), "user_id": str(r["user_id"])} for r in rows]
    assert (body["total"], body["limit"], body["offset"], body["has_more"]) == (len(rows), 50, 0, False)
    assert all(set(user) == SHAPES["DirectoryEntry"] for user in body["users"])
    assert not {u["user_id"] for u in body["users"]} & {str(b.admin.user_id), str(b.alice.user_id), str(b.bob.user_id)}
    for offset in range(len(rows)):
        page = (
            await client.get(a.path("users"), headers=a.admin.headers, params={"limit": 2, "offset": offset})
        ).json()
        assert page["users"] == body["users"][offset : offset + 2]
        assert page["has_more"] is (offset + 2 < len(rows))
    past = (await client.get(a.path("users"), headers=a.admin.headers, params={"offset": 99})).json()
    assert (past["users"], past["total"], past["has_more"]) == ([], len(rows), False)


async def test_a_supporter_may_not_list_users(client, world: World) -> None:
    response = await client.get(world.a.path("users"), headers=world.a.alice.headers)
    assert response.status_code == 403
    assert str(world.a.bob.user_id) not in response.text


async def test_another_tenants_admin_is_refused_and_a_bad_token_is_401(client, world: World) -> None:
    assert (await client.get(world.a.path("users"), headers=world.b.admin.headers)).status_code == 403
    assert (await client.get(world.a.path("users"), headers={"Authorization": "Bearer x"})).status_code == 401


@pytest.mark.parametrize(("name", "value"), [("limit", "0"), ("limit", "101"), ("limit", "1.0"), ("offset", "-1")])
async def test_out_of_range_paging_is_a_400_naming_the_field(client, world: World, name: str, value: str) -> None:
    response = await client.get(world.a.path("users"), headers=world.a.admin.headers, params={name: value})
    assert_names_field(response, name)


async def test_a_user_who_left_is_no_longer_listed(client, world: World, owner) -> None:
    a = world.a
    leaving = await create_user(owner, a.tenant_id, "supporter", world.secret)
    before = (await client.get(a.path("users"), headers=a.admin.headers)).json()
    assert str(leaving.user_id) in {u["user_id"] for u in before["users"]}
    await owner.execute("DELETE FROM users WHERE user_id = $1", leaving.user_id)
    after = (await client.get(a.path("users"), headers=a.admin.headers)).json()
    assert after["total"] == before["total"] - 1
    assert str(leaving.user_id) not in {u["user_id"] for u in after["users"]}
    assert uuid.UUID(after["users"][0]["user_id"])
