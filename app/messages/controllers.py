"""HTTP routes of the messages domain: a session's history."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.cursors import bind_offset, cursor_key, make_cursor, read_cursor
from app.inputs import OFFSET_MAX, Id
from app.messages import queries
from app.messages.schemas import MessageCreate, MessageInfo, MessageListResponse
from app.sessions.controllers import RECORDED, SESSION_ERRORS, Cursor, SessionId, session_not_found, write_refused
from app.sessions.schemas import Order
from app.users.schemas import UserInfo


class MessageController(Controller):
    """``/api/{tenant_id}/sessions/{session_id}/messages``: the history of one session."""

    path = "/sessions/{session_id:str}/messages"
    tags = ["messages"]

    @get(
        "/",
        summary="A session's history",
        description=(
            "A page of the session's messages, oldest first (`order=desc`: newest first, to open a chat on its "
            "latest messages and scroll back); `next_cursor` continues with keyset paging (ties broken by "
            "`message_id`). 404 when the caller may not read the session. An "
            "admin's read of another user's session is recorded in the access log (action `messages`)."
        ),
        raises=SESSION_ERRORS,
        opt=RECORDED,
    )
    async def list_messages(
        self,
        tenant_id: FromPath[Id],
        session_id: SessionId,
        state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Page size, 1–200")] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=OFFSET_MAX, description="Messages to skip, ≥ 0")] = 0,
        order: Annotated[
            Order, QueryParameter(description="`asc`: oldest first (default) · `desc`: newest first")
        ] = "asc",
        cursor: Cursor = None,
    ) -> MessageListResponse:
        bind_offset(cursor, offset)
        bound = {"session_id": session_id, "order": order}
        key = cursor_key(state.settings)
        page = await queries.list_messages(
            tenant_id,
            session_id,
            limit=limit,
            offset=offset,
            order=order,
            after=read_cursor(key, bound, cursor) if cursor is not None else None,
            cursor_of=partial(make_cursor, key, bound),
        )
        if page is None:
            raise session_not_found()
        return page

    @post(
        "/",
        summary="Add a message",
        description=(
            "Append a message (`role` ∈ user, assistant, system, tool; `content` 1–32,768 characters, not blank). "
            "The session's `updated_at` moves, and its first `user` message titles an untitled session. Only the "
            "owner may: an admin gets 403 for another user's session of the tenant, everyone else 404."
        ),
        raises=SESSION_ERRORS,
    )
    async def add_message(
        self,
        tenant_id: FromPath[Id],
        session_id: SessionId,
        user: NamedDependency[UserInfo],
        data: JSONBody[MessageCreate],
    ) -> MessageInfo:
        try:
            message = await queries.add_message(tenant_id, session_id, user.user_id, data.role, data.content)
        except queries.SessionDeletedError:
            raise session_not_found() from None
        if message is None:
            raise await write_refused(tenant_id, session_id)
        return message
