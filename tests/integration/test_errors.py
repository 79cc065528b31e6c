"""Errors a client can act on: every 400 names its field in words; a 500 is logged and explains nothing.

The exact ``detail`` is asserted: it is what a frontend shows its user.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import InternalServerException

from app.users.schemas import UserInfo
from tests.factories import World

ONE_TO_100 = "must be a whole number from 1 to 100"
OFFSET = "must be a whole number from 0 to 9007199254740991"
MESSAGE_ROLES = "role must be one of user, assistant, system, tool"

# (what is sent, the detail of the 400): on alice's list, her session, its messages.
LIST_CASES: list[tuple[dict[str, Any], str]] = [
    ({"sort_by": "title"}, "sort_by must be one of updated_at, created_at"),
    ({"order": "up"}, "order must be one of desc, asc"),
    ({"limit": "0"}, f"limit {ONE_TO_100}"),
    ({"limit": "101"}, f"limit {ONE_TO_100}"),
    ({"limit": "ten"}, f"limit {ONE_TO_100}"),
    ({"limit": "10.0"}, f"limit {ONE_TO_100}"),
    ({"offset": "-1"}, f"offset {OFFSET}"),
    ({"offset": "1e1"}, f"offset {OFFSET}"),
    ({"user_id": "alice"}, "user_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"),
    ({"limit": "0", "order": "up"}, f"limit {ONE_TO_100}; order must be one of desc, asc"),
    ({"archived": "maybe"}, "archived must be one of false, true, all"),
    ({"pinned": "1"}, "pinned must be true or false"),
    ({"agent_id": "x"}, "agent_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"),
    ({"cursor": "x"}, "cursor is not a cursor this server made (malformed or altered)"),
    ({"cursor": "x" * 201}, "cursor must be at most 200 characters"),
]
BODY_CASES: list[tuple[str, str, Any, str]] = [
    ("POST", "sessions", {"title": 5}, "title must be text or null"),
    (
        "POST",
        "sessions",
        {"agent_id": "DebtAgent"},
        "agent_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
    ),
    ("POST", "sessions", {"agent_id": str(uuid.uuid4())}, "agent_id is not an agent of this tenant"),
    ("POST", "sessions", {"name": "x"}, "name is not a field of this request"),
    ("POST", "sessions", [], "the request body must be a JSON object or null"),
    ("PATCH", "sessions/{session_id}", {}, "the request body must set at least one of title, pinned, archived"),
    ("PATCH", "sessions/{session_id}", {"pinned": "yes"}, "pinned must be true or false"),
    ("POST", "sessions/archive", {"session_ids": []}, "session_ids must hold at least 1 items"),
    ("PATCH", "sessions/{session_id}", "x", "the request body must be a JSON object"),
    ("POST", "sessions/{session_id}/messages", {"role": "user", "content": "   \n\t"}, "content must not be blank"),
    ("POST", "sessions/{session_id}/messages", {"role": "user", "content": ""}, "content must not be empty"),
    (
        "POST",
        "sessions/{session_id}/messages",
        {"role": "user", "content": "x" * 32_769},
        "content must be at most 32,768 characters",
    ),
    ("POST", "sessions/{session_id}/messages", {"role": "bot", "content": "hi"}, MESSAGE_ROLES),
    ("POST", "sessions/{session_id}/messages", {"content": "hi"}, "role is required"),
    ("POST", "sessions/{session_id}/messages", {"role": "user", "content": 7}, "content must be text"),
]


@pytest.mark.parametrize(("params", "detail"), LIST_CASES, ids=repr)
async def test_query_parameter_errors_say_what_is_allowed(
    client, world: World, params: dict[str, Any], detail: str
) -> None:
    response = await client.get(world.a.path(), headers=world.a.alice.headers, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail
    assert {p["key"] for p in response.json()["extra"]} == set(params)


@pytest.mark.parametrize("params", [{"limit": "0"}, {"offset": "1.5"}], ids=repr)
async def test_history_parameters_too(client, world: World, params: dict[str, str]) -> None:
    session_id = world.a.sessions[world.a.alice.user_id][0]
    response = await client.get(
        world.a.path(f"sessions/{session_id}/messages"), headers=world.a.alice.headers, params=params
    )
    assert response.status_code == 400, response.text
    expected = "limit must be a whole number from 1 to 200" if "limit" in params else f"offset {OFFSET}"
    assert response.json()["detail"] == expected


@pytest.mark.parametrize(("method", "path", "body", "detail"), BODY_CASES, ids=[c[3] for c in BODY_CASES])
async def test_body_errors_name_the_field_in_words(
    client, world: World, method: str, path: str, body: Any, detail: str
) -> None:
    session_id = world.a.sessions[world.a.alice.user_id][0]
    url = world.a.path(path.replace("{session_id}", str(session_id)))
    response = await client.request(method, url, headers=world.a.alice.headers, json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["detail"] == detail
    assert set(answer) == {"status_code", "detail", "extra"}
    for problem in answer["extra"]:
        assert problem["source"] == "body"
        assert problem["message"] in detail


async def test_a_malformed_session_id_says_so(client, world: World) -> None:
    response = await client.get(world.a.path("sessions/42"), headers=world.a.alice.headers)
    assert response.status_code == 400
    assert response.json() == {
        "status_code": 400,
        "detail": "session_id must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
        "extra": [
            {
                "key": "session_id",
                "message": "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000",
                "source": "path",
            }
        ],
    }


class ProbeError(RuntimeError):
    """The unexpected error the test route raises."""


@get("/probe/broken")
async def broken(user: NamedDependency[UserInfo]) -> None:
    raise ProbeError(f"secret detail of {user.email} that must stay in the log")


@get("/probe/internal")
async def internal(user: NamedDependency[UserInfo]) -> None:
    raise InternalServerException(detail=f"secret detail of {user.email} that must stay in the log")


class Records(logging.Handler):
    """Keeps what is logged to it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the ``app`` logger (a handler on it: Litestar's logging config replaces the root's, caplog's too)."""
    handler = Records()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(("route", "error"), [("broken", ProbeError), ("internal", InternalServerException)])
async def test_an_unexpected_error_is_a_bare_500_and_its_traceback_is_logged(
    app_with, world: World, app_log: list[logging.LogRecord], route: str, error: type[Exception]
) -> None:
    async with app_with(handlers=(broken, internal)) as http:
        response = await http.get(world.a.path(f"probe/{route}"), headers=world.a.alice.headers)
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}
    assert "secret detail" not in response.text
    assert error.__name__ not in response.text
    [record] = [r for r in app_log if r.exc_info and r.exc_info[0] is error]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"unhandled error in GET {world.a.path(f'probe/{route}')}"
    logged = logging.Formatter().format(record)
    assert "Traceback (most recent call last)" in logged
    assert f"secret detail of {world.a.alice.email}" in logged
