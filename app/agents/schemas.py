"""Response shapes of the agents domain (msgspec)."""

from __future__ import annotations

from uuid import UUID

import msgspec


class AgentInfo(msgspec.Struct, frozen=True):
    """An AI agent a session can be held with."""

    agent_id: UUID
    name: str
    description: str
