"""HTTP routes of the agents domain."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from app.agents import queries
from app.agents.schemas import AgentInfo
from app.auth.guards import GUARD_ERRORS
from app.inputs import Id


class AgentController(Controller):
    """``/api/{tenant_id}/agents``: the AI agents a session can be held with."""

    path = "/agents"
    tags = ["agents"]

    @get("/", summary="List agents", description="The tenant's agents, by name.", raises=GUARD_ERRORS)
    async def list_agents(self, tenant_id: FromPath[Id]) -> list[AgentInfo]:
        return await queries.list_agents(tenant_id)
