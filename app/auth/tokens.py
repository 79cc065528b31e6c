"""JWT verification and (development) minting with PyJWT."""

from __future__ import annotations

import time
from uuid import UUID

import jwt
import msgspec

from app.inputs import Id
from app.settings import Settings

REQUIRED_CLAIMS = ["exp", "sub", "tenant_id"]


class InvalidTokenError(Exception):
    """The token is not acceptable; the message says why (safe to show)."""


class Claims(msgspec.Struct, frozen=True):
    """The verified claims the API uses."""

    user_id: UUID
    tenant_id: UUID
    expires_at: float  # ``exp``: seconds since the epoch (a live stream ends then)


def decode_token(token: str, settings: Settings) -> Claims:
    """Verify signature, algorithm, ``exp`` (and ``nbf``, ``iss``, ``aud`` as configured); return the claims."""
    try:
        payload = jwt.decode(
            token,
            settings.verification_key,
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": REQUIRED_CLAIMS, "verify_aud": settings.jwt_audience is not None},
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidTokenError("token expired") from error
    except jwt.PyJWTError as error:
        raise InvalidTokenError("invalid token") from error
    try:  # canonical spellings only: a claim must name its user and tenant exactly as the path and the database do
        return Claims(user_id=Id(payload["sub"]), tenant_id=Id(payload["tenant_id"]), expires_at=float(payload["exp"]))
    except ValueError as error:
        raise InvalidTokenError("invalid token") from error


def mint_token(user_id: UUID, tenant_id: UUID, settings: Settings, ttl_seconds: int = 3600) -> str:
    """A signed HS256 token for a user (development and tests; production tokens come from the IdP)."""
    if settings.jwt_algorithm != "HS256":
        raise InvalidTokenError(f"cannot mint {settings.jwt_algorithm} tokens: no private key here")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.signing_key, algorithm="HS256")
