"""Fail-safe defaults, each on a real ``python -m app serve`` process started with that environment.

An unset ``APP_ENV`` is production. The ``/dev`` sign-in routes and the well-known
development key exist only with ``APP_ENV=development`` and no key configured; the server
says so in one warning line. Production refuses to start (clear message, exit 2) without a
strong ``JWT_SECRET``, and with RS256/ES256 but no ``JWT_ISSUER``/``JWT_AUDIENCE``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.seed import demo_id
from app.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, make_token
from tests.live import PROJECT, free_port, live_server

CONFIGURATION = ("APP_ENV", "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_ALGORITHM", "JWT_ISSUER", "JWT_AUDIENCE")
WARNING = "development mode (APP_ENV=development)"
ADVICE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
ANNA = {"tenant_id": str(demo_id("eTMS")), "user_id": str(demo_id("eTMS", "anna"))}


@pytest.fixture
def environment(monkeypatch, database) -> dict[str, str]:
    """The test database, and none of the configuration variables (whatever the shell that runs the tests set)."""
    for name in CONFIGURATION:
        monkeypatch.delenv(name, raising=False)
    return {"DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.runtime_dsn}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_no_dev_sign_in(url: str, victims: World) -> None:
    """No /dev routes, and a token signed with the well-known development key is worthless."""
    assert httpx.get(f"{url}/dev/users").status_code == 404
    assert httpx.post(f"{url}/dev/token", json=ANNA).status_code in {404, 405}
    alice = victims.a.alice
    forged = make_token(DEVELOPMENT_JWT_SECRET, alice.user_id, alice.tenant_id)
    assert httpx.get(f"{url}{victims.a.path('me')}", headers=bearer(forged)).status_code == 401


def refused(env: dict[str, str]) -> str:
    """Run ``python -m app serve`` with ``env``; assert it refuses to start; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "refusing to start: " in result.stderr
    assert "Uvicorn running" not in output
    assert "Traceback" not in output
    return result.stderr


def test_unset_app_env_with_a_secret_is_production(environment, victims: World, seeded) -> None:
    """The finding: with APP_ENV unset and a real JWT_SECRET, /dev/token signed a token for anyone."""
    with live_server({**environment, "JWT_SECRET": TEST_JWT_SECRET}) as server:
        assert httpx.post(f"{server.url}/dev/token", json=ANNA).status_code in {404, 405}
        assert_no_dev_sign_in(server.url, victims)
        me = httpx.get(f"{server.url}{victims.a.path('me')}", headers=victims.a.alice.headers)
        assert me.status_code == 200  # the configured secret is the one in use
        assert WARNING not in server.output()


def test_unset_app_env_without_a_secret_refuses_to_start(environment) -> None:
    message = refused(environment)
    assert "JWT_SECRET is required in production (an unset APP_ENV means production" in message
    assert ADVICE in message


def test_explicit_development_offers_the_dev_sign_in_and_says_so(environment, victims: World, seeded) -> None:
    with live_server({**environment, "APP_ENV": "development"}) as server:
        users = httpx.get(f"{server.url}/dev/users")
        assert users.status_code == 200
        assert "anna@etms.example" in users.text
        minted = httpx.post(f"{server.url}/dev/token", json=ANNA)
        assert minted.status_code == 201, minted.text
        me = httpx.get(f"{server.url}/api/{demo_id('eTMS')}/me", headers=bearer(minted.json()["token"]))
        assert me.status_code == 200
        assert me.json()["email"] == "anna@etms.example"
        # Tokens signed with the test run's secret are not accepted: the development key is in use.
        assert httpx.get(f"{server.url}{victims.a.path('me')}", headers=victims.a.alice.headers).status_code == 401
        warnings = [line for line in server.output().splitlines() if WARNING in line]
        assert len(warnings) == 1, server.output()
        assert "WARNING" in warnings[0]
        assert "/dev/token" in warnings[0]
        assert "well-known development key" in warnings[0]


def test_development_with_a_secret_has_no_dev_sign_in(environment, victims: World, seeded) -> None:
    with live_server({**environment, "APP_ENV": "development", "JWT_SECRET": TEST_JWT_SECRET}) as server:
        assert_no_dev_sign_in(server.url, victims)
        assert httpx.get(f"{server.url}{victims.a.path('me')}", headers=victims.a.alice.headers).status_code == 200
        warnings = [line for line in server.output().splitlines() if WARNING in line]
        assert len(warnings) == 1, server.output()
        assert "/dev/token" not in warnings[0]


def test_production_with_a_good_secret_serves_without_dev_routes(environment, victims: World, seeded) -> None:
    with live_server({**environment, "APP_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET}) as server:
        assert_no_dev_sign_in(server.url, victims)
        assert httpx.get(f"{server.url}{victims.a.path('me')}", headers=victims.a.alice.headers).status_code == 200
        assert WARNING not in server.output()


def test_production_without_a_secret_refuses_to_start(environment) -> None:
    message = refused({**environment, "APP_ENV": "production"})
    assert "JWT_SECRET is required in production" in message
    assert ADVICE in message


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("changeme" * 4, "too easy to guess"),
        ("secret" + "0" * 26, "too easy to guess"),
        (" " * 32, "too easy to guess"),
    ],
    ids=["repeated word", "padded word", "whitespace"],
)
def test_production_with_a_worthless_secret_refuses_to_start(environment, secret: str, reason: str) -> None:
    message = refused({**environment, "APP_ENV": "production", "JWT_SECRET": secret})
    assert f"JWT_SECRET is {reason}" in message
    assert ADVICE in message


@pytest.fixture(scope="module")
def identity_provider() -> tuple[rsa.RSAPrivateKey, str]:
    """An RSA key pair standing in for an identity provider: the private key, and the public PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem.decode()


@pytest.mark.parametrize(
    "claims",
    [{}, {"JWT_ISSUER": "https://idp.example.test/"}, {"JWT_AUDIENCE": "chat-sessions-api"}],
    ids=["neither", "issuer only", "audience only"],
)
def test_production_rs256_without_issuer_and_audience_refuses_to_start(environment, identity_provider, claims) -> None:
    env = {**environment, "JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": identity_provider[1], **claims}
    message = refused(env)
    assert "JWT_ALGORITHM=RS256 in production needs JWT_ISSUER and JWT_AUDIENCE" in message


def test_production_rs256_with_issuer_and_audience_accepts_only_tokens_for_this_api(
    environment, identity_provider, victims: World
) -> None:
    key, public_pem = identity_provider
    issuer, audience = "https://idp.example.test/", "chat-sessions-api"
    env = {
        **environment,
        "JWT_ALGORITHM": "RS256",
        "JWT_PUBLIC_KEY": public_pem,
        "JWT_ISSUER": issuer,
        "JWT_AUDIENCE": audience,
        "CURSOR_SECRET": secrets.token_urlsafe(32),  # no JWT_SECRET to derive the cursors' key from
    }
    alice = victims.a.alice

    def token(**claims: str) -> str:
        body = {"sub": str(alice.user_id), "tenant_id": str(alice.tenant_id), "exp": 2**31 - 1, **claims}
        return jwt.encode(body, key, algorithm="RS256")

    with live_server(env) as server:
        me = f"{server.url}{victims.a.path('me')}"
        assert httpx.get(me, headers=bearer(token(iss=issuer, aud=audience))).status_code == 200
        # The same identity provider's token for another service, or from another issuer: refused.
        assert httpx.get(me, headers=bearer(token(iss=issuer, aud="another-service"))).status_code == 401
        assert httpx.get(me, headers=bearer(token(iss="https://other.example.test/", aud=audience))).status_code == 401
        assert httpx.get(me, headers=bearer(token(iss=issuer))).status_code == 401
        assert httpx.get(f"{server.url}/dev/users").status_code == 404
        assert httpx.post(f"{server.url}/dev/token", json={"tenant_id": str(uuid.uuid4())}).status_code in {404, 405}
        assert WARNING not in server.output()
