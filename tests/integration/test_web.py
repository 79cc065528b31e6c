"""The web page at ``/``, the development-only sign-in routes, and CORS for a separately hosted frontend."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from app.main import create_app
from app.seed import demo_email, demo_id
from tests.factories import World

# Development mode as `make run` starts it: APP_ENV=development, no key configured.
DEVELOPMENT = {"app_env": "development", "jwt_secret": None}


@pytest.fixture
async def dev_client(app_with):
    """The app in development mode (the /dev routes, the development key)."""
    async with app_with(**DEVELOPMENT) as http:
        yield http


async def test_page_is_served_at_root_with_its_assets(client) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await client.get("/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text  # API strings only ever go through textContent
    assert (await client.get("/style.css")).headers["content-type"].startswith("text/css")
    assert (await client.get("/no-such-file.js")).status_code == 404


async def test_page_does_not_shadow_the_api(client, world: World) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    sessions = await client.get(world.a.path(), headers=world.a.alice.headers)
    assert sessions.status_code == 200
    assert sessions.json()["total"] == 3
    assert (await client.get(world.a.path())).status_code == 401


async def test_dev_users_lists_the_seeded_users(dev_client, seeded) -> None:
    response = await dev_client.get("/dev/users")
    assert response.status_code == 200
    users = response.json()
    emails = {u["email"] for u in users}
    assert {demo_email(t, p) for t in ("eTMS", "eFMS", "Vela") for p in ("admin", "anna", "ben")} <= emails
    anna = next(u for u in users if u["email"] == demo_email("eTMS", "anna"))
    assert anna == {
        "user_id": str(demo_id("eTMS", "anna")),
        "tenant_id": str(demo_id("eTMS")),
        "tenant_name": "eTMS",
        "email": "anna@etms.example",
        "display_name": "Anna (eTMS)",
        "role": "supporter",
    }


async def test_dev_token_signs_in_as_that_user(dev_client, world: World) -> None:
    alice = world.a.alice
    body = {"tenant_id": str(alice.tenant_id), "user_id": str(alice.user_id)}
    response = await dev_client.post("/dev/token", json=body)
    assert response.status_code == 201, response.text
    me = await dev_client.get(world.a.path("me"), headers={"Authorization": f"Bearer {response.json()['token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == alice.email


async def test_dev_token_refuses_a_user_of_another_tenant(dev_client, world: World) -> None:
    body = {"tenant_id": str(world.b.tenant_id), "user_id": str(world.a.alice.user_id)}
    response = await dev_client.post("/dev/token", json=body)
    assert response.status_code == 404
    assert "token" not in response.json()
    body = {"tenant_id": str(world.a.tenant_id), "user_id": str(uuid.uuid4())}
    unknown = await dev_client.post("/dev/token", json=body)
    assert unknown.status_code == 404


def dev_routes(settings) -> list[str]:
    return [r.path for r in create_app(settings).routes if r.path.startswith("/dev")]


def test_dev_routes_exist_only_in_explicit_development_without_a_key(settings) -> None:
    assert sorted(dev_routes(replace(settings, **DEVELOPMENT))) == ["/dev/token", "/dev/users"]
    assert not dev_routes(settings)  # production (the tests' settings, as deployed)
    assert not dev_routes(replace(settings, app_env="development"))  # JWT_SECRET is set
    assert not dev_routes(replace(settings, app_env="production", jwt_secret=settings.jwt_secret))


@pytest.mark.parametrize("changes", [{}, {"app_env": "development"}], ids=["production", "development with JWT_SECRET"])
async def test_dev_routes_answer_404_without_the_development_key(app_with, world: World, seeded, changes) -> None:
    async with app_with(**changes) as http:
        users = await http.get("/dev/users")
        assert users.status_code == 404
        assert "anna@etms.example" not in users.text
        body = {"tenant_id": str(world.a.tenant_id), "user_id": str(world.a.alice.user_id)}
        token = await http.post("/dev/token", json=body)
        assert token.status_code in {404, 405}
        assert "token" not in token.json()
        assert (await http.get("/")).status_code == 200  # the page itself is served in production too


FRONTEND = "https://frontend.example.test"


async def test_cors_allows_a_listed_origin(app_with, world: World) -> None:
    async with app_with(cors_origins=(FRONTEND,)) as http:
        preflight = await http.options(
            world.a.path(),
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code in {200, 204}, preflight.text
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        assert "GET" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        actual = await http.get(world.a.path(), headers={"Origin": FRONTEND, **world.a.alice.headers})
        assert actual.status_code == 200
        assert actual.headers["access-control-allow-origin"] == FRONTEND
        assert actual.json()["total"] == 3


async def test_cors_ignores_an_unlisted_origin(app_with, world: World) -> None:
    async with app_with(cors_origins=(FRONTEND,)) as http:
        evil = "https://evil.example.test"
        preflight = await http.options(world.a.path(), headers={"Origin": evil, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers
        actual = await http.get(world.a.path(), headers={"Origin": evil, **world.a.alice.headers})
        assert "access-control-allow-origin" not in actual.headers


async def test_no_cors_headers_without_cors_origins(client, world: World) -> None:
    actual = await client.get(world.a.path(), headers={"Origin": FRONTEND, **world.a.alice.headers})
    assert actual.status_code == 200
    assert "access-control-allow-origin" not in actual.headers
