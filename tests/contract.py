"""The response shapes and formats of the public contract, as the tests check them.

The contract itself is kept outside this repository; README.md's "HTTP API" section states
what these tests hold the API to.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

SHAPES = {
    "SessionInfo": {
        "session_id",
        "user_id",
        "title",
        "agent_name",
        "created_at",
        "updated_at",
        "message_count",
        "is_active",
        "pinned",
        "archived",
        "snippet",
    },
    "SessionListResponse": {"sessions", "total", "limit", "offset", "has_more", "next_cursor", "total_capped"},
    "MessageInfo": {"message_id", "session_id", "role", "content", "created_at"},
    "MessageListResponse": {"messages", "total", "limit", "offset", "has_more", "next_cursor"},
    "MessageCreate": {"role", "content"},
    "SessionCreate": {"title", "agent_id"},
    "SessionUpdate": {"title", "pinned", "archived"},
    "SessionArchive": {"session_ids"},
    "ArchiveResult": {"archived"},
    "DirectoryEntry": {"user_id", "email", "display_name", "role"},
    "UserListResponse": {"users", "total", "limit", "offset", "has_more"},
    "AgentInfo": {"agent_id", "name", "description"},
}


def when(value: str) -> datetime:
    """A contract timestamp (ISO 8601, UTC, ``Z``) as a datetime."""
    assert ISO_UTC.match(value), value
    return datetime.fromisoformat(value)


def assert_names_field(response: Any, field: str) -> None:
    """A 400 in Litestar's error shape whose ``detail`` names ``field``."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert field in body["detail"], body
