"""Queries of the agents domain (run inside the request's transaction, under RLS)."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.agents.schemas import AgentInfo
from app.tables import AgentConfig


async def list_agents(tenant_id: UUID) -> list[AgentInfo]:
    """The tenant's agents, by name."""
    rows = await AgentConfig.raw(
        "SELECT agent_id, name, description FROM agent_configs WHERE tenant_id = {} ORDER BY name, agent_id",
        tenant_id,
    )
    return msgspec.convert(rows, list[AgentInfo])


async def agent_exists(tenant_id: UUID, agent_id: UUID) -> bool:
    """True when ``agent_id`` is an agent of the tenant."""
    rows = await AgentConfig.raw(
        "SELECT 1 FROM agent_configs WHERE tenant_id = {} AND agent_id = {}", tenant_id, agent_id
    )
    return bool(rows)
