"""``db seed``: demo tenants, users, agents, sessions and messages (idempotent, deterministic).

Every row is a pure function of the names below and of one moment, ``now`` (the start of the
seeding run, to the minute): ids are UUID v5 of the names, contents come from fixed tables,
and each timestamp is a fixed offset before ``now``, so that the demo always shows recent
(active) and older (inactive) sessions. Seeding again inserts nothing (the ids exist), so the
rows stay as the first run wrote them; ``make clean`` starts afresh. Rows are written with the
tenant (and user) context set, so seeding works under FORCE ROW LEVEL SECURITY for any owner.

Each supporter gets 18 sessions over all four agents, the second one a 64-message
conversation (so both the sidebar and the history page); each admin gets 5.
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
SESSIONS_PER_ROLE = {"supporter": 18, "admin": 5}
LONG_SESSION = 1  # the index (in a supporter's list, newest first) of the 64-message conversation
# A supporter's pinned sessions (one recent, one older) and archived ones (two old ones), by index.
PINNED_SESSIONS = frozenset({2, 9})
ARCHIVED_SESSIONS = frozenset({15, 16})
# Hours between a session's last message and ``now``, newest first: 7 sessions active (< 24 h), 11 not.
AGES_HOURS = (0.2, 0.5, 1.5, 3, 5, 8, 13, 26, 30, 47, 52, 75, 100, 124, 170, 200, 340, 500)
# (agent, title or None: then the database titles it from the first user message, turns alternating user/assistant)
TOPICS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    (
        "ShipmentAgent",
        "Where is shipment 4711?",
        (
            "Where is shipment 4711?",
            "Shipment 4711 left the Hamburg hub this morning and is on its way to Rotterdam.",
            "When will it arrive?",
            "The carrier expects delivery on Thursday before noon.",
        ),
    ),
    (
        "DebtAgent",
        None,
        (
            "Why is invoice 2025-118 overdue?",
            "It was due on the 1st; a reminder went out on the 8th.",
        ),
    ),
    (
        "GuidelineAgent",
        "Refund policy for damaged goods",
        (
            "What is the refund policy for damaged goods?",
            "Refunds are granted within 30 days with photos of the damage and the delivery note.",
            "Does that include the shipping costs?",
            "Yes, shipping is refunded too when the damage happened in transit.",
        ),
    ),
    (
        "SupervisorAgent",
        None,
        (
            "I need help with a customs declaration for a shipment to Norway",
            "Routing you to the ShipmentAgent, which handles customs documents.",
        ),
    ),
    (
        "DebtAgent",
        "Payment plan for ACME Logistics",
        (
            "Can ACME Logistics pay their balance in instalments?",
            "Yes: balances above 5,000 EUR can be split into up to six monthly instalments.",
            "What interest applies?",
            "None, as long as every instalment is paid on time.",
            "Please set up three instalments starting next month.",
            "Done: three instalments of 2,140 EUR, the first due on the 1st.",
        ),
    ),
    (
        "ShipmentAgent",
        None,
        (
            "The customer says pallet 3 of order 5520 arrived wet and the cartons are torn on two sides,"
            " what should they do before they sign the delivery note?",
            "They should note the damage on the delivery note, take photos, and keep the packaging.",
        ),
    ),
    (
        "GuidelineAgent",
        "Working hours on public holidays",
        (
            "Do warehouse shifts run on public holidays?",
            "Only the early shift, from 6:00 to 14:00, with the holiday bonus.",
        ),
    ),
    (
        "SupervisorAgent",
        "Escalation: missing container",
        (
            "Container MSKU 220041 has not shown up in the terminal for three days.",
            "I have opened an escalation with the ShipmentAgent and the terminal operator.",
            "Who is the contact at the terminal?",
            "The duty manager of the Rotterdam Euromax terminal; the ShipmentAgent will share the details.",
        ),
    ),
    (
        "DebtAgent",
        None,
        (
            "A credit note for invoice 2025-097 is missing",
            "It was issued on the 12th and sent to the billing address on file.",
            "Can you resend it to accounts@customer.example?",
            "Sent. It should arrive within a few minutes.",
        ),
    ),
    (
        "ShipmentAgent",
        "Express delivery to Vienna",
        (
            "Can we still get an express delivery to Vienna by Friday?",
            "Yes, if the goods are at the hub by Wednesday 16:00.",
        ),
    ),
    (
        "GuidelineAgent",
        None,
        (
            "How long do we keep signed delivery notes?",
            "Ten years, in the document archive; scans count as originals.",
        ),
    ),
    (
        "SupervisorAgent",
        "New customer onboarding",
        (
            "A new customer wants to start shipping next week. What do we need?",
            "A signed framework contract, a credit check by the DebtAgent, and their loading addresses.",
            "The contract is signed.",
            "Then I will ask the DebtAgent for the credit check now.",
        ),
    ),
    (
        "DebtAgent",
        "Dunning level 2 for Nordlicht GmbH",
        (
            "Why did Nordlicht GmbH get a second reminder?",
            "Two invoices are more than 30 days overdue: 2025-131 and 2025-140.",
        ),
    ),
    (
        "ShipmentAgent",
        None,
        (
            "Track parcel 00340434161094015902",
            "The parcel is out for delivery and should arrive today between 14:00 and 16:00.",
        ),
    ),
    (
        "GuidelineAgent",
        "Dangerous goods labels",
        (
            "Which labels does a shipment of lithium batteries need?",
            "The UN 3481 label and the lithium battery mark; air freight also needs the cargo-aircraft-only label.",
            "And for road transport?",
            "The battery mark is enough when each package holds less than 100 Wh.",
        ),
    ),
    (
        "SupervisorAgent",
        None,
        (
            "Who can approve a discount above 10 %?",
            "Only the regional sales lead; I can route the request to them.",
        ),
    ),
    (
        "DebtAgent",
        "Currency of invoices to the UK",
        (
            "Can we invoice our UK customers in GBP?",
            "Yes, on request; the exchange rate of the invoice date applies.",
        ),
    ),
    (
        "ShipmentAgent",
        None,
        (
            "Book a pickup in Lyon for tomorrow morning",
            "Booked: the driver arrives between 8:00 and 10:00. Reference PU-55190.",
            "Thanks. Can they take four pallets?",
            "Yes, the truck has room for up to twelve.",
        ),
    ),
)
# The long conversation: a shipment followed day by day.
LONG_TOPIC: tuple[str, str | None] = ("ShipmentAgent", "Shipment 8812: daily tracking")
CHECKPOINTS = (
    "loaded at the Shanghai Yangshan terminal",
    "departed Shanghai",
    "passing the Taiwan Strait",
    "arrived in Singapore for transshipment",
    "departed Singapore",
    "crossing the Indian Ocean",
    "arrived in Colombo",
    "departed Colombo",
    "in the Arabian Sea",
    "waiting to enter the Red Sea",
    "in the Red Sea",
    "passed the Suez Canal",
    "in the Mediterranean",
    "arrived in Piraeus",
    "departed Piraeus",
    "passing the Strait of Gibraltar",
    "off the coast of Portugal",
    "in the Bay of Biscay",
    "in the English Channel",
    "arrived in Rotterdam",
    "discharged at the Rotterdam terminal",
    "cleared by customs",
    "loaded on a barge to Duisburg",
    "on the Rhine near Nijmegen",
    "arrived in Duisburg",
    "loaded on a truck",
    "on the A3 towards Frankfurt",
    "at the Frankfurt cross-dock",
    "out for delivery",
    "delivered, signed by the warehouse",
    "the delivery note is in the archive",
    "closed",
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
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    founded = now - timedelta(days=60)
    added = {"tenants": 0, "users": 0, "agent_configs": 0, "sessions": 0, "messages": 0}
    async with get_engine().transaction():
        for tenant in TENANTS:
            tenant_id = demo_id(tenant)
            await _set_context(tenant_id)
            added["tenants"] += await _insert(Tenant, [Tenant(tenant_id=tenant_id, name=tenant, created_at=founded)])
            added["agent_configs"] += await _insert(
                AgentConfig,
                [
                    AgentConfig(
                        agent_id=demo_id(tenant, name),
                        tenant_id=tenant_id,
                        name=name,
                        description=text,
                        created_at=founded,
                    )
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
                        created_at=founded,
                    )
                    for person, display, role in PEOPLE
                ],
            )
            for rank, (person, _, role) in enumerate(PEOPLE):
                user_id = demo_id(tenant, person)
                await _set_context(tenant_id, user_id)
                sessions, messages = _conversations(tenant, tenant_id, person, user_id, role, rank, now)
                added["sessions"] += await _insert(Session, sessions)
                added["messages"] += await _insert(Message, messages)
    return added


def _conversations(
    tenant: str, tenant_id: UUID, person: str, user_id: UUID, role: str, rank: int, now: datetime
) -> tuple[list[Session], list[Message]]:
    """The sessions of one user, newest first, and their messages."""
    sessions: list[Session] = []
    messages: list[Message] = []
    for index in range(SESSIONS_PER_ROLE[role]):
        if role == "supporter" and index == LONG_SESSION:
            agent, title = LONG_TOPIC
            turns = _long_conversation()
        else:
            agent, title, turns = TOPICS[(index + 7 * rank) % len(TOPICS)]
        gap = timedelta(minutes=3 if len(turns) > 10 else 2)
        last = now - timedelta(hours=AGES_HOURS[index])
        started = last - gap * len(turns)
        session_id = demo_id(tenant, person, "session", str(index))
        supporter = role == "supporter"
        sessions.append(
            Session(
                session_id=session_id,
                tenant_id=tenant_id,
                user_id=user_id,
                agent_id=demo_id(tenant, agent),
                title=title,
                created_at=started,
                updated_at=started,
                pinned=supporter and index in PINNED_SESSIONS,
                archived=supporter and index in ARCHIVED_SESSIONS,
            )
        )
        for turn, content in enumerate(turns):
            messages.append(
                Message(
                    message_id=demo_id(tenant, person, "session", str(index), str(turn)),
                    session_id=session_id,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    role="user" if turn % 2 == 0 else "assistant",
                    content=content,
                    created_at=started + gap * (turn + 1),
                )
            )
    return sessions, messages


def _long_conversation() -> tuple[str, ...]:
    """64 turns: the user asks for news of shipment 8812 every day, the agent names the checkpoint."""
    turns: list[str] = []
    for day, checkpoint in enumerate(CHECKPOINTS, start=1):
        turns.append(f"Day {day}: any news on shipment 8812?")
        turns.append(f"Shipment 8812 is {checkpoint}.")
    return tuple(turns)


async def _insert(table: type[Tenant | User | AgentConfig | Session | Message], rows: list) -> int:  # type: ignore[type-arg]
    if not rows:
        return 0
    pk = table._meta.primary_key
    inserted = await table.insert(*rows).on_conflict(action="DO NOTHING").returning(pk)
    return len(inserted)
