"""HTTP route of the live-updates domain: ``GET /api/{tenant_id}/events``, a Server-Sent Events stream."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from app.auth.guards import GUARD_ERRORS
from app.auth.tokens import Claims
from app.events.hub import Hub
from app.events.schemas import StreamEvent
from app.inputs import Id
from app.users.schemas import UserInfo

DESCRIPTION = """\
A Server-Sent Events stream (`text/event-stream`) of the caller's sessions, or, for an admin
with `user_id`, of that user's (a supporter may name only themselves: 403).

| event | data |
|---|---|
| `session` | `SessionInfo` of a session created or changed (title, a new message, …) |
| `session_deleted` | `{session_id}` |
| `message` | `MessageInfo` of a new message |
| `resync` | `{}`: first, for a client that reconnects with `Last-Event-ID`; re-read the list, nothing is replayed |

Every event has an `id:`; a comment line comes at least every 15 s. Each event is read from the
database with the caller's own context, under row-level security. The stream ends when the
token expires, when the caller is no longer a user of the tenant, and when the database
connection is lost: reconnect (with `Last-Event-ID`). 503 with `Retry-After` when the process
already holds `EVENTS_MAX_STREAMS` streams or cannot listen to the database right now."""


class EventController(Controller):
    """``/api/{tenant_id}/events``: live updates of the caller's sessions (or, for an admin, of one user's)."""

    path = "/events"
    tags = ["events"]

    @get(
        "/",
        summary="Live updates (Server-Sent Events)",
        description=DESCRIPTION,
        raises=GUARD_ERRORS,  # its 503 (Retry-After) is documented there; the cap's has the same shape
        # Documented here, not as the handler's media type: Litestar would give that to the JSON errors too.
        responses={
            200: ResponseSpec(
                data_container=StreamEvent,
                media_type="text/event-stream",
                description="An open stream of events (see above)",
                generate_examples=False,
            )
        },
    )
    async def events(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[Id],
        user: NamedDependency[UserInfo],
        user_id: Annotated[Id | None, QueryParameter(description="Follow this user (admins only)")] = None,
        last_event_id: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", description="Sent on reconnection: `resync` comes first")
        ] = None,
    ) -> ServerSentEvent:
        if user_id is not None and user_id != user.user_id and not user.is_admin:
            raise PermissionDeniedException(detail="a supporter may only follow their own sessions")
        hub: Hub = request.app.state.events
        claims: Claims = request.state.claims
        stream = hub.open(
            tenant_id, user.user_id, user_id or user.user_id, claims.expires_at, resync=last_event_id is not None
        )
        return ServerSentEvent(hub.events(stream))
