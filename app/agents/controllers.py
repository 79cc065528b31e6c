"""HTTP routes of the agents domain."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get
from litestar.params import FromPath

from app.agents import queries
from app.agents.schemas import AgentInfo
from app.auth.guards import GUARD_ERRORS


class AgentController(Controller):
    """``/api/{tenant_id}/agents``: the AI agents a session can be held with."""

    path = "/agents"
    tags = ["agents"]

    @get("/", summary="List agents", description="The tenant's agents, by name.", raises=GUARD_ERRORS)
    async def list_agents(self, tenant_id: FromPath[UUID]) -> list[AgentInfo]:
        return await queries.list_agents(tenant_id)
