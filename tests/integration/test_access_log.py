"""Admins' reads recorded by the database (``access_log``) and ``GET /access-log``, over HTTP on real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.contract import assert_names_field
from tests.factories import TestTenant, World

ENTRY_FIELDS = {"entry_id", "tenant_id", "session_id", "owner_id", "reader_id", "action", "at"}


async def entries(owner: asyncpg.Pool, tenant: TestTenant) -> list[asyncpg.Record]:
    """Every entry of the tenant, oldest first (read as the owner, beside RLS)."""
    return await owner.fetch(  # type: ignore[no-any-return]
        "SELECT * FROM access_log WHERE tenant_id = $1 ORDER BY at, entry_id", tenant.tenant_id
    )


async def test_an_admins_read_of_a_colleagues_session_writes_one_entry_per_read(client, world: World, owner) -> None:
    a = world.a
    session_id = a.sessions[a.alice.user_id][0]
    for path, action in ((f"sessions/{session_id}", "session"), (f"sessions/{session_id}/messages", "messages")):
        before = len(await entries(owner, a))
        for _ in range(2):
            assert (await client.get(a.path(path), headers=a.admin.headers)).status_code == 200
        found = (await entries(owner, a))[before:]
        assert [(e["action"], e["session_id"], e["owner_id"], e["reader_id"]) for e in found] == [
            (action, session_id, a.alice.user_id, a.admin.user_id)
        ] * 2


async def test_own_reads_and_supporters_reads_write_nothing(client, world: World, owner) -> None:
    a = world.a
    own = a.sessions[a.admin.user_id][0]
    mine = a.sessions[a.alice.user_id][0]
    for user, session_id in ((a.admin, own), (a.alice, mine)):
        for path in (f"sessions/{session_id}", f"sessions/{session_id}/messages"):
            assert (await client.get(a.path(path), headers=user.headers)).status_code == 200
    # A supporter's try at a colleague's session is a 404, and records nothing either.
    other = a.sessions[a.bob.user_id][0]
    assert (await client.get(a.path(f"sessions/{other}"), headers=a.alice.headers)).status_code == 404
    # Nor does listing (no content of a session is read but titles, as the contract allows).
    assert (await client.get(a.path("sessions"), headers=a.admin.headers)).status_code == 200
    assert await entries(owner, a) == []


async def test_a_missing_or_foreign_session_records_nothing(client, world: World, owner) -> None:
    a, b = world.a, world.b
    foreign = b.sessions[b.alice.user_id][0]
    for session_id in (foreign, uuid.uuid4()):
        assert (await client.get(a.path(f"sessions/{session_id}"), headers=a.admin.headers)).status_code == 404
        assert (await client.get(a.path(f"sessions/{session_id}/messages"), headers=a.admin.headers)).status_code == 404
    assert await entries(owner, a) == [] == await entries(owner, b)


async def test_the_admin_sees_the_tenants_entries_and_a_supporter_only_those_about_their_sessions(
    client, world: World
) -> None:
    a = world.a
    alices, bobs = a.sessions[a.alice.user_id][0], a.sessions[a.bob.user_id][0]
    for session_id in (alices, bobs, alices):
        assert (await client.get(a.path(f"sessions/{session_id}"), headers=a.admin.headers)).status_code == 200

    admin = (await client.get(a.path("access-log"), headers=a.admin.headers)).json()
    assert admin["total"] == 3
    assert admin["limit"] == 50
    assert admin["offset"] == 0
    assert admin["has_more"] is False
    assert [e["session_id"] for e in admin["entries"]] == [str(alices), str(bobs), str(alices)]  # newest first
    assert all(set(e) == ENTRY_FIELDS for e in admin["entries"])
    assert {e["reader_id"] for e in admin["entries"]} == {str(a.admin.user_id)}

    alice = (await client.get(a.path("access-log"), headers=a.alice.headers)).json()
    assert alice["total"] == 2
    assert {e["owner_id"] for e in alice["entries"]} == {str(a.alice.user_id)}
    bob = (await client.get(a.path("access-log"), headers=a.bob.headers)).json()
    assert bob["total"] == 1
    assert bob["entries"][0]["session_id"] == str(bobs)
    # session_id narrows; paging is exact.
    one = (await client.get(a.path("access-log"), params={"session_id": str(bobs)}, headers=a.admin.headers)).json()
    assert one["total"] == 1
    assert one["entries"][0]["owner_id"] == str(a.bob.user_id)
    page = (await client.get(a.path("access-log"), params={"limit": 2, "offset": 1}, headers=a.admin.headers)).json()
    assert page["entries"] == admin["entries"][1:3]
    assert page["has_more"] is False
    first = (await client.get(a.path("access-log"), params={"limit": 1}, headers=a.admin.headers)).json()
    assert first["entries"] == admin["entries"][:1]
    assert first["has_more"] is True
    # Another tenant sees none of it.
    b = world.b
    assert (await client.get(b.path("access-log"), headers=b.admin.headers)).json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"session_id": "not-a-uuid"}, "session_id"),
    ],
)
async def test_malformed_parameters_are_400_naming_the_field(client, world: World, params, field) -> None:
    a = world.a
    response = await client.get(a.path("access-log"), params=params, headers=a.admin.headers)
    assert response.status_code == 400, response.text
    assert_names_field(response, field)
