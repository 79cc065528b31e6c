"""``db seed``: demo tenants, users, agents, sessions and messages (idempotent).

IDs are derived from names (UUID v5), so seeding twice inserts nothing new and the demo
data has the same ids on every machine. Rows are written with the tenant (and user)
context set, so seeding works under FORCE ROW LEVEL SECURITY for any owner role.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from app.db.context import set_context
from app.db.engine import get_engine
from app.tables import AgentConfig, Message, Session, Tenant, User

TENANTS = ("eTMS", "eFMS", "Vela")
AGENTS = {
    "SupervisorAgent": "Routes a conversation to the right specialist agent.",
    "GuidelineAgent": "Answers questions about company guidelines and procedures.",
    "DebtAgent": "Explains invoices, balances and payment plans.",
    "ShipmentAgent": "Tracks shipments and explains delivery status.",
}
PEOPLE = (("admin", "Admin", "admin"), ("anna", "Anna", "supporter"), ("ben", "Ben", "supporter"))
CONVERSATIONS = (
    ("ShipmentAgent", "Where is shipment 4711?", "Shipment 4711 left the Hamburg hub this morning."),
    ("DebtAgent", "Why is invoice 2025-118 overdue?", "It was due on the 1st; a reminder went out on the 8th."),
    ("GuidelineAgent", "What is the refund policy for damaged goods?", "Refunds within 30 days with photos."),
    ("SupervisorAgent", "I need help with a customs declaration", "Routing you to the ShipmentAgent."),
)


def demo_id(*parts: str) -> UUID:
    """A stable UUID for a demo row."""
    return uuid5(NAMESPACE_URL, "chat-sessions-demo:" + "/".join(parts))


def demo_email(tenant: str, person: str) -> str:
    """The seeded email of ``person`` in ``tenant`` (e.g. ``anna@etms.example``)."""
    return f"{person}@{tenant.lower()}.example"


async def _set_context(tenant_id: UUID, user_id: UUID | None = None) -> None:
    transaction = get_engine().current_transaction.get()
    assert transaction is not None, "seed() runs in a transaction"
    await set_context(transaction.connection, tenant_id, user_id)


async def seed(now: datetime | None = None) -> dict[str, int]:
    """Insert the demo data that is missing; return how many rows of each table were added."""
    now = now or datetime.now(UTC)
    added = {"tenants": 0, "users": 0, "agent_configs": 0, "sessions": 0, "messages": 0}
    async with get_engine().transaction():
        for tenant in TENANTS:
            tenant_id = demo_id(tenant)
            await _set_context(tenant_id)
            added["tenants"] += await _insert(Tenant, [Tenant(tenant_id=tenant_id, name=tenant)])
            added["agent_configs"] += await _insert(
                AgentConfig,
                [
                    AgentConfig(agent_id=demo_id(tenant, name), tenant_id=tenant_id, name=name, description=text)
                    for name, text in AGENTS.items()
                ],
            )
            added["users"] += await _insert(
                User,
                [
                    User(
                        user_id=demo_id(tenant, person),
                        tenant_id=tenant_id,
                        email=demo_email(tenant, person),
                        display_name=f"{display} ({tenant})",
                        role=role,
                    )
                    for person, display, role in PEOPLE
                ],
            )
            for rank, (person, _, _) in enumerate(PEOPLE):
                user_id = demo_id(tenant, person)
                await _set_context(tenant_id, user_id)
                sessions, messages = _conversations(tenant, tenant_id, person, user_id, now, rank)
                added["sessions"] += await _insert(Session, sessions)
                added["messages"] += await _insert(Message, messages)
    return added


def _conversations(
    tenant: str, tenant_id: UUID, person: str, user_id: UUID, now: datetime, rank: int
) -> tuple[list[Session], list[Message]]:
    sessions: list[Session] = []
    messages: list[Message] = []
    for index, (agent, question, answer) in enumerate(CONVERSATIONS[: 4 - rank % 2]):
        started = now - timedelta(hours=2 + index * 20 + rank * 3)
        session_id = demo_id(tenant, person, "session", str(index))
        sessions.append(
            Session(
                session_id=session_id,
                tenant_id=tenant_id,
                user_id=user_id,
                agent_id=demo_id(tenant, agent),
                title=question if index % 2 == 0 else None,
                created_at=started,
                updated_at=started,
            )
        )
        for turn, (role, content) in enumerate((("user", question), ("assistant", answer))):
            messages.append(
                Message(
                    message_id=demo_id(tenant, person, "session", str(index), str(turn)),
                    session_id=session_id,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    role=role,
                    content=content,
                    created_at=started + timedelta(minutes=turn + 1),
                )
            )
    return sessions, messages


async def _insert(table: type[Tenant | User | AgentConfig | Session | Message], rows: list) -> int:  # type: ignore[type-arg]
    if not rows:
        return 0
    pk = table._meta.primary_key
    inserted = await table.insert(*rows).on_conflict(action="DO NOTHING").returning(pk)
    return len(inserted)
