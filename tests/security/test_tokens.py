"""Forged, broken and misused tokens: every one is 401 on every API route, and leaks nothing.

Only a valid token for another tenant's path is 403; roles never come from the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, create_user, other_spellings
from tests.security.attack import MOUNTED, Route, foreign_markers, headers, leaks


def b64(data: bytes) -> str:
    """Base64url without padding (JWT encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A JWT built by hand: HMAC-SHA256 with ``key`` (whatever ``alg`` claims), or no signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key is not None else ""
    return f"{signing_input}.{signature}"


def claims(user_id: uuid.UUID, tenant_id: uuid.UUID, /, **changes: Any) -> dict[str, Any]:
    """Valid claims, with ``changes`` applied (a value of ``None`` removes the claim)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": str(user_id), "tenant_id": str(tenant_id), "iat": now, "exp": now + 600}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = TEST_JWT_SECRET) -> str:
    """An HS256 token."""
    return jwt.encode(payload, secret, algorithm="HS256")


def rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


IDP_KEY = rsa_key()
OTHER_KEY = rsa_key()
PRIVATE_PEM = IDP_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUBLIC_PEM = (
    IDP_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_PEM = OTHER_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def tamper(token: str, **changes: Any) -> str:
    """``token`` with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    return f"{header}.{b64(json.dumps(body).encode())}.{signature}"


# Each case: (world, attacker-tenant path) -> token presented on tenant A's path. All must be 401.
def respelled(claim: str, how: str) -> Callable[[World], str]:
    """A token of alice whose ``claim`` (``sub`` or ``tenant_id``) is her id in another spelling."""

    def token(w: World) -> str:
        value = w.a.alice.user_id if claim == "sub" else w.a.tenant_id
        return hs256(claims(w.a.alice.user_id, w.a.tenant_id, **{claim: other_spellings(value)[how]}))

    return token


HS256_CASES: dict[str, Callable[[World], str]] = {
    "alg none": lambda w: forge({"alg": "none", "typ": "JWT"}, claims(w.a.alice.user_id, w.a.tenant_id)),
    "alg None": lambda w: forge({"alg": "None", "typ": "JWT"}, claims(w.a.alice.user_id, w.a.tenant_id)),
    "alg none with a signature": lambda w: forge(
        {"alg": "none"}, claims(w.a.alice.user_id, w.a.tenant_id), TEST_JWT_SECRET.encode()
    ),
    "alg HS512 claimed, HS256 signed": lambda w: forge(
        {"alg": "HS512", "typ": "JWT"}, claims(w.a.alice.user_id, w.a.tenant_id), TEST_JWT_SECRET.encode()
    ),
    "HS384 with the right secret": lambda w: jwt.encode(
        claims(w.a.alice.user_id, w.a.tenant_id), TEST_JWT_SECRET, algorithm="HS384"
    ),
    "wrong key": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id), "x" * 48),
    "empty key": lambda w: forge({"alg": "HS256", "typ": "JWT"}, claims(w.a.alice.user_id, w.a.tenant_id), b""),
    "tampered sub": lambda w: tamper(hs256(claims(w.a.alice.user_id, w.a.tenant_id)), sub=str(w.a.admin.user_id)),
    "tampered tenant": lambda w: tamper(hs256(claims(w.b.alice.user_id, w.b.tenant_id)), tenant_id=str(w.a.tenant_id)),
    "tampered exp": lambda w: tamper(
        hs256(claims(w.a.alice.user_id, w.a.tenant_id, exp=int(time.time()) - 60)), exp=int(time.time()) + 600
    ),
    "signature stripped": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id)).rsplit(".", 1)[0] + ".",
    "expired": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, exp=int(time.time()) - 5)),
    "nbf in the future": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, nbf=int(time.time()) + 600)),
    "exp not a number": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, exp="never")),
    "missing sub": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub=None)),
    "missing tenant_id": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, tenant_id=None)),
    "missing exp": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, exp=None)),
    "unknown user": lambda w: hs256(claims(uuid.uuid4(), w.a.tenant_id)),
    "sub of tenant B, tenant_id of A": lambda w: hs256(claims(w.b.alice.user_id, w.a.tenant_id)),
    "sub of tenant A, tenant_id of B": lambda w: hs256(claims(w.a.alice.user_id, w.b.tenant_id)),
    "admin of B claiming A": lambda w: hs256(claims(w.b.admin.user_id, w.a.tenant_id)),
    "sub not a uuid": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub="alice")),
    "sub an integer": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub=12345)),
    "sub a list": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub=[str(w.a.alice.user_id)])),
    "sub with SQL": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub="' OR '1'='1")),
    "sub with a NUL byte": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, sub=f"{w.a.alice.user_id}\x00")),
    "tenant_id empty": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, tenant_id="")),
    "tenant_id with SQL": lambda w: hs256(
        claims(w.a.alice.user_id, w.a.tenant_id, tenant_id="x'); SELECT set_config('app.tenant_id', '1', false); --")
    ),
    "tenant_id an object": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, tenant_id={"id": 1})),
    "tenant_id unicode": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id, tenant_id="ｔｅｎａｎｔ")),
    **{f"sub with {how}": respelled("sub", how) for how in other_spellings(uuid.uuid4())},
    **{f"tenant_id with {how}": respelled("tenant_id", how) for how in other_spellings(uuid.uuid4())},
    "expired, on another tenant's path": lambda w: hs256(
        claims(w.b.alice.user_id, w.b.tenant_id, exp=int(time.time()) - 5)
    ),
    "not a JWT": lambda w: "not.a.jwt",
    "garbage": lambda w: "\u00e9\u00e9\u00e9",
}


def route_url(route: Route, world: World) -> str:
    """Tenant A's URL of ``route`` (session routes: one of alice's sessions)."""
    return route.url(world.a.tenant_id, world.a.sessions[world.a.alice.user_id][0])


async def send(http: Any, route: Route, url: str, token_headers: Mapping[str, str | bytes]) -> Any:
    """Send ``route``'s request with its valid body."""
    return await http.request(route.method, url, headers=token_headers, json=route.body)


@pytest.mark.parametrize("route", MOUNTED, ids=str)
@pytest.mark.parametrize("case", HS256_CASES)
async def test_bad_token_is_401(client, victims: World, case: str, route: Route) -> None:
    token = HS256_CASES[case](victims)
    response = await send(client, route, route_url(route, victims), headers(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not leaks(response.text, foreign_markers(victims, victims.b.alice) | foreign_markers(victims, victims.a.bob))


@pytest.mark.parametrize("route", MOUNTED, ids=str)
async def test_valid_token_of_another_tenant_is_403(client, victims: World, route: Route) -> None:
    for attacker in (victims.b.admin, victims.b.alice):
        response = await send(client, route, route_url(route, victims), attacker.headers)
        assert response.status_code == 403, response.text
        assert not leaks(response.text, foreign_markers(victims, attacker))


async def test_deleted_user_is_401_on_every_route(client, victims: World, owner: asyncpg.Pool) -> None:
    gone = await create_user(owner, victims.a.tenant_id, "admin", TEST_JWT_SECRET)
    assert (await client.get(victims.a.path("me"), headers=gone.headers)).status_code == 200
    await owner.execute("DELETE FROM users WHERE user_id = $1", gone.user_id)
    for route in MOUNTED:
        response = await send(client, route, route_url(route, victims), gone.headers)
        assert response.status_code == 401, (route, response.text)


async def test_upper_case_claims_are_canonical_too(client, victims: World) -> None:
    user = victims.a.alice
    token = hs256(
        claims(user.user_id, user.tenant_id, sub=str(user.user_id).upper(), tenant_id=str(user.tenant_id).upper())
    )
    response = await client.get(victims.a.path("me"), headers=headers(token))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == str(user.user_id)


async def test_role_claim_in_the_token_is_ignored(client, victims: World) -> None:
    token = hs256(claims(victims.a.alice.user_id, victims.a.tenant_id, role="admin", is_admin=True))
    response = await client.get(victims.a.path("me"), headers=headers(token))
    assert response.status_code == 200
    assert response.json()["role"] == "supporter"
    listed = await client.get(victims.a.path(), headers=headers(token), params={"limit": 100})
    assert listed.status_code == 200
    assert {s["session_id"] for s in listed.json()["sessions"]} == {
        str(s) for s in victims.a.sessions[victims.a.alice.user_id]
    }


# --- RS256: algorithm confusion -----------------------------------------------------------------

RS256_CASES: dict[str, Callable[[World], str]] = {
    "HS256 signed with the RS public key": lambda w: forge(
        {"alg": "HS256", "typ": "JWT"}, claims(w.a.alice.user_id, w.a.tenant_id), PUBLIC_PEM.encode()
    ),
    "HS256 signed with the HS secret": lambda w: hs256(claims(w.a.alice.user_id, w.a.tenant_id)),
    "RS256 signed with another key": lambda w: jwt.encode(
        claims(w.a.alice.user_id, w.a.tenant_id), OTHER_PEM, algorithm="RS256"
    ),
    "alg none": lambda w: forge({"alg": "none"}, claims(w.a.alice.user_id, w.a.tenant_id)),
    "RS256, tampered tenant": lambda w: tamper(
        jwt.encode(claims(w.b.alice.user_id, w.b.tenant_id), PRIVATE_PEM, algorithm="RS256"),
        tenant_id=str(w.a.tenant_id),
    ),
}


async def test_rs256_app_refuses_algorithm_confusion(app_with, victims: World) -> None:
    # Development: production also needs JWT_ISSUER/JWT_AUDIENCE, which would refuse these tokens for another reason.
    async with app_with(jwt_algorithm="RS256", jwt_public_key=PUBLIC_PEM, app_env="development") as http:
        valid = jwt.encode(claims(victims.a.alice.user_id, victims.a.tenant_id), PRIVATE_PEM, algorithm="RS256")
        control = await http.get(victims.a.path("me"), headers=headers(valid))
        assert control.status_code == 200, control.text
        for case, make in RS256_CASES.items():
            for route in MOUNTED:
                response = await send(http, route, route_url(route, victims), headers(make(victims)))
                assert response.status_code == 401, (case, route, response.text)
                assert not leaks(response.text, foreign_markers(victims, victims.b.alice))


# --- issuer and audience ------------------------------------------------------------------------

ISSUER, AUDIENCE = "https://idp.example.test", "chat-sessions-api"
ISS_AUD_CASES: dict[str, dict[str, Any]] = {
    "wrong issuer": {"iss": "https://evil.example.test", "aud": AUDIENCE},
    "missing issuer": {"aud": AUDIENCE},
    "wrong audience": {"iss": ISSUER, "aud": "another-api"},
    "audience list without ours": {"iss": ISSUER, "aud": ["another-api", "a-third"]},
    "missing audience": {"iss": ISSUER},
}


async def test_configured_issuer_and_audience_are_enforced(app_with, victims: World) -> None:
    async with app_with(jwt_issuer=ISSUER, jwt_audience=AUDIENCE) as http:
        user = victims.a.alice
        control = await http.get(
            victims.a.path("me"), headers=headers(hs256(claims(user.user_id, user.tenant_id, iss=ISSUER, aud=AUDIENCE)))
        )
        assert control.status_code == 200, control.text
        for case, extra in ISS_AUD_CASES.items():
            token = hs256(claims(user.user_id, user.tenant_id, **extra))
            for route in MOUNTED:
                response = await send(http, route, route_url(route, victims), headers(token))
                assert response.status_code == 401, (case, route, response.text)
