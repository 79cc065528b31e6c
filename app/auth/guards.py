"""The guard of every ``/api/{tenant_id}/…`` route: authenticate, set the tenant context, authorize."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.handlers.base import BaseRouteHandler

from app.auth.tokens import InvalidTokenError, decode_token
from app.db.replica import READ_AFTER_HEADER, parse_lsn
from app.db.transaction import DatabaseUnavailableError, get_request_transaction
from app.inputs import ID_WORDS, Id, invalid
from app.settings import Settings
from app.users.schemas import UserInfo

# What every guarded route may answer besides its own codes (for the OpenAPI document).
# 400: a path whose tenant_id is not a UUID, or a malformed X-Read-After (once the token is valid).
GUARD_ERRORS = [NotAuthorizedException, PermissionDeniedException, ValidationException, DatabaseUnavailableError]
LSN_WORDS = "must be a WAL position as the server sent it, such as 0/16B3748"
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chat-sessions"'}


def _unauthorized(detail: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers=BEARER_CHALLENGE)


def path_tenant_id(connection: ASGIConnection[Any, Any, Any, Any]) -> UUID:
    """The path's ``tenant_id``, read only after authentication: malformed → 400 naming it, never before a 401."""
    try:
        return Id(connection.path_params["tenant_id"])
    except ValueError:
        raise invalid("tenant_id", ID_WORDS, "path") from None


def read_after(connection: ASGIConnection[Any, Any, Any, Any]) -> int | None:
    """The ``X-Read-After`` WAL position a client sent back (None: none); malformed → 400 naming it."""
    text = connection.headers.get(READ_AFTER_HEADER)
    if text is None:
        return None
    try:
        return parse_lsn(text.strip())
    except ValueError:
        raise invalid(READ_AFTER_HEADER, LSN_WORDS, "header") from None


async def tenant_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Verify the bearer JWT, begin the request transaction with its tenant context, load the user.

    401 for a missing or bad token; 400 for a malformed ``X-Read-After``; 401 for a user that
    does not exist in the token's tenant; then 400 when the path's tenant id is malformed,
    403 when it is not the token's.
    The user (with the role read from the database) is left in ``connection.state.user``, the
    verified claims in ``connection.state.claims``.
    """
    scheme, _space, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token")
    settings: Settings = connection.app.state.settings
    try:
        claims = decode_token(token.strip(), settings)
    except InvalidTokenError as error:
        raise _unauthorized(str(error)) from error
    position = read_after(connection)
    row = await get_request_transaction(connection.scope).begin(claims.tenant_id, claims.user_id, position)
    if row is None:
        raise _unauthorized("unknown user")
    if path_tenant_id(connection) != claims.tenant_id:
        raise PermissionDeniedException(detail="token is not valid for this tenant")
    connection.state.user = msgspec.convert(dict(row), UserInfo)
    connection.state.claims = claims


def provide_user(request: Request[object, object, State]) -> UserInfo:
    """Dependency: the authenticated user the guard loaded."""
    user: UserInfo = request.state.user
    return user
