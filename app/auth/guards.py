"""The guard of every ``/api/{tenant_id}/…`` route: authenticate, set the tenant context, authorize."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.auth.tokens import InvalidTokenError, decode_token
from app.db.transaction import DatabaseUnavailableError, get_request_transaction
from app.settings import Settings
from app.users.schemas import UserInfo

# What every guarded route may answer besides its own codes (for the OpenAPI document).
# 404: the router answers it for a path whose tenant_id is not a UUID.
GUARD_ERRORS = [NotAuthorizedException, PermissionDeniedException, NotFoundException, DatabaseUnavailableError]
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chat-sessions"'}


def _unauthorized(detail: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers=BEARER_CHALLENGE)


async def tenant_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Verify the bearer JWT, begin the request transaction with its tenant context, load the user.

    401 for a missing or bad token and for a user that does not exist in the token's
    tenant; then 403 when the path's tenant is not the token's. The user (with the role
    read from the database) is left in ``connection.state.user``.
    """
    scheme, _space, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token")
    settings: Settings = connection.app.state.settings
    try:
        claims = decode_token(token.strip(), settings)
    except InvalidTokenError as error:
        raise _unauthorized(str(error)) from error
    row = await get_request_transaction(connection.scope).begin(claims.tenant_id, claims.user_id)
    if row is None:
        raise _unauthorized("unknown user")
    if connection.path_params.get("tenant_id") != claims.tenant_id:
        raise PermissionDeniedException(detail="token is not valid for this tenant")
    connection.state.user = msgspec.convert(dict(row), UserInfo)


def provide_user(request: Request[object, object, State]) -> UserInfo:
    """Dependency: the authenticated user the guard loaded."""
    user: UserInfo = request.state.user
    return user
