"""Another tenant's path, another tenant's or another user's session id: 403 or 404, never data.

A tenant id in the path that is not a UUID is read only once the token is: 401 first, then 400.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, create_session, create_user
from tests.security.attack import (
    APP_ROUTES,
    BY_SESSION,
    GONE,
    MOUNTED,
    UNCOVERED,
    Route,
    foreign_markers,
    leaks,
)


def test_every_api_route_is_attacked() -> None:
    """A route the app serves but this suite does not know would go unattacked: add it to ATTACKS."""
    assert APP_ROUTES  # the route table was read
    assert UNCOVERED == []
    assert [(r.method, r.path) for r in MOUNTED] == APP_ROUTES


def test_no_route_left_the_app_with_its_attacks() -> None:
    """An entry of ATTACKS whose route the app no longer serves: the route vanished (or was renamed)."""
    assert GONE == []


@pytest.mark.parametrize("route", MOUNTED, ids=str)
@pytest.mark.parametrize("attacker", ["admin", "alice"])
async def test_another_or_unknown_tenants_path_is_403(client, victims: World, route: Route, attacker: str) -> None:
    user = getattr(victims.b, attacker)
    for tenant_id in (victims.a.tenant_id, uuid.uuid4()):
        url = route.url(tenant_id, victims.a.sessions[victims.a.alice.user_id][0])
        response = await client.request(route.method, url, headers=user.headers, json=route.body)
        assert response.status_code == 403, response.text
        assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", BY_SESSION, ids=str)
@pytest.mark.parametrize("attacker", ["admin", "alice"])
async def test_another_tenants_session_on_own_path_is_404_like_a_missing_one(
    client, victims: World, route: Route, attacker: str
) -> None:
    user = getattr(victims.b, attacker)
    missing = await client.request(
        route.method, route.url(victims.b.tenant_id, uuid.uuid4()), headers=user.headers, json=route.body
    )
    assert missing.status_code == 404
    for session_id in victims.a.all_session_ids:
        response = await client.request(
            route.method, route.url(victims.b.tenant_id, session_id), headers=user.headers, json=route.body
        )
        assert response.status_code == 404, response.text
        assert response.json() == missing.json()  # indistinguishable: ids can't be probed
        assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", BY_SESSION, ids=str)
async def test_colleagues_session_is_404_for_a_supporter(client, victims: World, route: Route) -> None:
    user = victims.a.alice
    for owner_id in (victims.a.bob.user_id, victims.a.admin.user_id):
        for session_id in victims.a.sessions[owner_id]:
            response = await client.request(
                route.method, route.url(victims.a.tenant_id, session_id), headers=user.headers, json=route.body
            )
            assert response.status_code == 404, response.text
            assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", BY_SESSION, ids=str)
async def test_admin_reads_but_never_writes_a_colleagues_session(
    client, victims: World, owner: asyncpg.Pool, route: Route
) -> None:
    admin = victims.a.admin
    session_id = await create_session(owner, victims.a.bob, title="bob's own")
    response = await client.request(
        route.method, route.url(victims.a.tenant_id, session_id), headers=admin.headers, json=route.body
    )
    assert response.status_code == (403 if route.writes else 200), response.text
    assert not leaks(response.text, foreign_markers(victims, admin))
    row = await owner.fetchrow("SELECT title, message_count FROM sessions WHERE session_id = $1", session_id)
    assert (row["title"], row["message_count"]) == ("bob's own", 0)


@pytest.mark.parametrize("attacker", ["admin", "alice"])
async def test_list_naming_another_tenants_user(client, victims: World, attacker: str) -> None:
    user = getattr(victims.a, attacker)
    for victim in (victims.b.admin, victims.b.alice, victims.b.bob):
        response = await client.get(victims.a.path(), headers=user.headers, params={"user_id": str(victim.user_id)})
        if attacker == "admin":
            assert response.status_code == 200
            assert response.json()["sessions"] == []
            assert response.json()["total"] == 0
        else:
            assert response.status_code == 403
        assert not leaks(response.text, foreign_markers(victims, user), sent=str(victim.user_id))


MALFORMED_TENANTS = ["not-a-uuid", "12345", "\uff11" * 8 + "-1234-1234-1234-123456789abc", "%00"]


@pytest.mark.parametrize("route", MOUNTED, ids=str)
@pytest.mark.parametrize("tenant", MALFORMED_TENANTS)
async def test_malformed_tenant_id_is_401_before_it_is_400(
    client, victims: World, owner: asyncpg.Pool, route: Route, tenant: str
) -> None:
    """Without a valid token the path is not even read (401); with one it is 400 naming ``tenant_id``."""
    user = victims.a.alice
    url = route.url(tenant, victims.a.sessions[user.user_id][0])
    gone = await create_user(owner, victims.a.tenant_id, "supporter", TEST_JWT_SECRET)
    await owner.execute("DELETE FROM users WHERE user_id = $1", gone.user_id)
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, gone.headers):
        response = await client.request(route.method, url, headers=headers, json=route.body)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = await client.request(route.method, url, headers=user.headers, json=route.body)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "status_code": 400,
        "detail": "tenant_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
        "extra": [
            {
                "key": "tenant_id",
                "message": "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
                "source": "path",
            }
        ],
    }
