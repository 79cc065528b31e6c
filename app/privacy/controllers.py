"""HTTP routes of the privacy domain: who read my chats (``/access-log``) and the export of a user's data."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from app.auth.guards import GUARD_ERRORS
from app.db.replica import READS_WRITE
from app.db.transaction import STREAMS, get_request_transaction
from app.inputs import OFFSET_MAX, Id
from app.privacy import queries
from app.privacy.schemas import AccessLogResponse, ExportLine
from app.users.schemas import UserInfo

NDJSON = "application/x-ndjson"


class PrivacyController(Controller):
    """``/api/{tenant_id}/access-log`` and ``/api/{tenant_id}/export``."""

    tags = ["privacy"]

    @get(
        "/access-log",
        summary="Who read which chats",
        description=(
            "Entries of the access log, newest first: each records that an admin read a session they do not own "
            "(`action`: `session`, `messages`, `events`, `export`, `search`), written by the database in the "
            "read's own transaction. An admin sees the tenant's entries, a supporter those about their own "
            "sessions; `session_id` narrows to one session."
        ),
        raises=GUARD_ERRORS,
    )
    async def access_log(
        self,
        tenant_id: FromPath[Id],
        user: NamedDependency[UserInfo],
        session_id: Annotated[Id | None, QueryParameter(description="Only the entries about this session")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1–100")] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="Entries to skip, ≥ 0")] = 0,
    ) -> AccessLogResponse:
        owner = None if user.is_admin else user.user_id
        return await queries.list_entries(tenant_id, owner, session_id, limit=limit, offset=offset)

    @get(
        "/export",
        summary="Export a user's sessions (NDJSON)",
        description=(
            "`application/x-ndjson`: one line per session, `SessionInfo` with `messages` (oldest first), sessions "
            "oldest first; streamed from the database in constant memory. The caller's own sessions, or, for an "
            "admin, those of `user_id` (a user outside the tenant has none); a supporter may name only themselves "
            "(403). An admin's export of another user is recorded in the access log, once per session (`export`)."
        ),
        raises=GUARD_ERRORS,
        opt={READS_WRITE: "admin", STREAMS: True},
        responses={
            200: ResponseSpec(
                data_container=ExportLine,
                media_type=NDJSON,
                description="One `ExportLine` per line",
                generate_examples=False,
            )
        },
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[Id],
        user: NamedDependency[UserInfo],
        user_id: Annotated[Id | None, QueryParameter(description="Whose sessions (admins only)")] = None,
    ) -> Stream:
        if user_id is not None and user_id != user.user_id and not user.is_admin:
            raise PermissionDeniedException(detail="a supporter may only export their own sessions")
        connection = get_request_transaction(request.scope).connection
        assert connection is not None, "the guard began the request's transaction"
        lines = await queries.open_export(connection, tenant_id, user_id or user.user_id)
        return Stream(lines, media_type=NDJSON)
