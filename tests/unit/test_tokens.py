"""JWT verification: algorithms, required claims, issuer and audience (no database)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.auth.tokens import Claims, InvalidTokenError, decode_token, mint_token
from app.settings import Settings
from tests.factories import other_spellings

SECRET = "unit-test-secret-that-is-long-enough-0123456789"
USER, TENANT = uuid.uuid4(), uuid.uuid4()
HS = Settings(jwt_secret=SECRET)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": str(USER), "tenant_id": str(TENANT), "iat": now, "exp": now + 3600}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_minted_tokens_round_trip() -> None:
    decoded = decode_token(mint_token(USER, TENANT, HS, ttl_seconds=60), HS)
    assert decoded == Claims(user_id=USER, tenant_id=TENANT, expires_at=decoded.expires_at)
    assert 0 < decoded.expires_at - time.time() <= 60  # the live stream ends then


def test_minted_tokens_carry_issuer_and_audience() -> None:
    settings = replace(HS, jwt_issuer="https://idp", jwt_audience="chat")
    token = mint_token(USER, TENANT, settings, ttl_seconds=5)
    assert decode_token(token, settings).user_id == USER
    with pytest.raises(InvalidTokenError):
        decode_token(token, replace(settings, jwt_audience="other"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(exp=int(time.time()) - 1), "token expired"),
        (claims(exp=None), "invalid token"),
        (claims(sub=None), "invalid token"),
        (claims(tenant_id=None), "invalid token"),
        (claims(nbf=int(time.time()) + 3600), "invalid token"),
        (claims(sub="not-a-uuid"), "invalid token"),
        (claims(tenant_id=12), "invalid token"),
    ],
)
def test_bad_claims_are_refused(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTokenError, match=reason):
        decode_token(jwt.encode(payload, SECRET, algorithm="HS256"), HS)


@pytest.mark.parametrize("claim", ["sub", "tenant_id"])
@pytest.mark.parametrize("how", other_spellings(uuid.uuid4()))
def test_claim_ids_have_one_spelling(claim: str, how: str) -> None:
    """Python's ``uuid.UUID`` reads all of these as the same id; a claim must be spelt as the database spells it."""
    value = {"sub": USER, "tenant_id": TENANT}[claim]
    with pytest.raises(InvalidTokenError, match="invalid token"):
        decode_token(jwt.encode(claims(**{claim: other_spellings(value)[how]}), SECRET, algorithm="HS256"), HS)


def test_claim_ids_may_be_upper_case() -> None:
    payload = claims(sub=str(USER).upper(), tenant_id=str(TENANT).upper())
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert decode_token(token, HS) == Claims(user_id=USER, tenant_id=TENANT, expires_at=payload["exp"])


def test_alg_none_and_other_algorithms_are_refused() -> None:
    unsigned = jwt.encode(claims(), "", algorithm="none")
    with pytest.raises(InvalidTokenError):
        decode_token(unsigned, HS)
    with pytest.raises(InvalidTokenError):
        decode_token(jwt.encode(claims(), SECRET * 2, algorithm="HS512"), HS)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(InvalidTokenError):
        decode_token(jwt.encode(claims(), SECRET + "x", algorithm="HS256"), HS)


def test_issuer_is_verified_when_configured() -> None:
    settings = replace(HS, jwt_issuer="https://idp")
    with pytest.raises(InvalidTokenError):
        decode_token(jwt.encode(claims(), SECRET, algorithm="HS256"), settings)
    with pytest.raises(InvalidTokenError):
        decode_token(jwt.encode(claims(iss="https://evil"), SECRET, algorithm="HS256"), settings)
    assert decode_token(jwt.encode(claims(iss="https://idp"), SECRET, algorithm="HS256"), settings).tenant_id == TENANT


def _pem(private_key: Any) -> str:
    pem: str = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return pem


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_asymmetric_tokens_and_algorithm_confusion(algorithm: str, key: Any) -> None:
    public_pem = _pem(key)
    settings = Settings(jwt_algorithm=algorithm, jwt_public_key=public_pem)
    assert decode_token(jwt.encode(claims(), key, algorithm=algorithm), settings).user_id == USER
    # HS256 signed by hand with the public key as the HMAC secret (PyJWT refuses to make one):
    # refused, only the configured algorithm is accepted.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    signing_input = header + b"." + jwt.utils.base64url_encode(json.dumps(claims()).encode())
    signature = jwt.utils.base64url_encode(hmac.new(public_pem.encode(), signing_input, hashlib.sha256).digest())
    confused = (signing_input + b"." + signature).decode()
    with pytest.raises(InvalidTokenError):
        decode_token(confused, settings)
    with pytest.raises(InvalidTokenError, match="cannot mint"):
        mint_token(USER, TENANT, settings)
