"""Bulk data for the benchmarks, loaded with binary COPY (asyncpg ``copy_records_to_table``).

Three tenants (eTMS, eFMS, Vela), each with an admin, four agents and supporters holding
about ``sessions_per_user`` sessions. In eTMS two special supporters: ``power`` (the user
whose list is measured, ``power_sessions`` sessions) and ``heavy`` (``heavy_sessions``
sessions of ``heavy_messages`` messages each). The remaining messages are spread over
the other sessions (1 to 2×average-1 each, deterministic).

The load runs as the superuser with ``session_replication_role = replica``: the
``messages_counters`` and ``sessions_counters`` triggers (and the foreign-key triggers)
do not fire, so ``message_count``, ``last_message_at``, ``updated_at``, the per-user
``session_counts`` and ``search_words`` are written directly with the values the triggers would have kept.
IDs increase in load order (like UUIDv7), so the primary-key and (session_id,
created_at) indexes are appended to, not split at random.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

TENANTS = ("eTMS", "eFMS", "Vela")
AGENTS = ("SupervisorAgent", "GuidelineAgent", "DebtAgent", "ShipmentAgent")
MESSAGE_SPACING = timedelta(seconds=30)
CONTENTS = (
    "Where is shipment {n}? The customer called twice today.",
    "Shipment {n} left the Hamburg hub this morning and should arrive within two working days.",
    "Why is invoice 2025-{n} overdue? The customer says it was paid on time.",
    "It was due on the 1st; a reminder went out on the 8th. The payment arrived on the 12th, so the "
    "late fee can be waived once the bank confirms the transfer date.",
    "What is the refund policy for damaged goods? " + "The box was crushed and the contents are wet. " * 3,
    "Refunds are granted within 30 days when photos of the damage are attached.",
    "I need help with a customs declaration for order {n}.",
    "Routing you to the ShipmentAgent.",
)


# The words of every title and message, as rls_policies/search_words.sql's triggers write them, set-wise:
# each distinct text cut once (the generated contents repeat), the indexes dropped meanwhile and built after.
SEARCH_WORDS_SQL = """
INSERT INTO search_words (tenant_id, user_id, session_id, message_id, word)
    SELECT s.tenant_id, s.user_id, s.session_id, NULL, w FROM sessions s, chat_search_words(s.title) AS w;
INSERT INTO search_words (tenant_id, user_id, session_id, message_id, word)
    SELECT m.tenant_id, m.user_id, m.session_id, m.message_id, t.word
    FROM messages m
    JOIN (
        SELECT c.content, w AS word FROM (SELECT DISTINCT content FROM messages) c, chat_search_words(c.content) AS w
    ) t ON t.content = m.content;
"""


async def fill_search_words(connection: asyncpg.Connection) -> None:
    """``search_words`` for the loaded rows, its indexes rebuilt from their own definitions afterwards."""
    indexes = await connection.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'search_words'")
    for index in indexes:
        await connection.execute(f'DROP INDEX "{index["indexname"]}"')
    await connection.execute(SEARCH_WORDS_SQL)
    for index in indexes:
        await connection.execute(index["indexdef"])


@dataclass(frozen=True)
class Plan:
    """How much to load."""

    sessions: int
    messages: int
    power_sessions: int
    power_messages: int | None = None  # messages in each of power's sessions; None: the common spread
    heavy_sessions: int = 0
    heavy_messages: int = 0
    sessions_per_user: int = 100
    seed: int = 20251125


@dataclass
class Loaded:
    """What was loaded: the ids the scenarios need, and the counts."""

    plan: dict[str, object]
    tenants: dict[str, str] = field(default_factory=dict)  # name -> tenant_id
    admins: dict[str, str] = field(default_factory=dict)  # tenant name -> admin user_id
    power: str = ""
    heavy: str = ""
    power_sessions: list[str] = field(default_factory=list)  # newest-created first, up to 1,000
    heavy_sessions: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Ids:
    """Increasing UUIDs: a fixed random prefix per kind, then a counter."""

    def __init__(self, kind: int) -> None:
        self.base = (0x0190_0000_0000_7000 | kind) << 64
        self.n = 0

    def next(self) -> UUID:
        self.n += 1
        return UUID(int=self.base | self.n)


@dataclass
class _Session:
    session_id: UUID
    tenant_id: UUID
    user_id: UUID
    agent_id: UUID | None
    title: str | None
    created_at: datetime
    messages: int


def _sessions(
    plan: Plan, loaded: Loaded, agents: dict[str, list[UUID]], now: datetime
) -> tuple[list[tuple[object, ...]], list[_Session]]:
    """The users (records) and the sessions to load, with their message counts."""
    rng = random.Random(plan.seed)
    ids = _Ids(2)
    sids = _Ids(3)
    users: list[tuple[object, ...]] = []
    owners: list[tuple[UUID, UUID, str]] = []  # (tenant, user, kind) per session, in load order

    def user(tenant: str, name: str, role: str) -> UUID:
        user_id = ids.next()
        tenant_id = UUID(loaded.tenants[tenant])
        users.append((user_id, tenant_id, f"{name}@{tenant.lower()}.example", f"{name} ({tenant})", role, now))
        return user_id

    for tenant in TENANTS:
        loaded.admins[tenant] = str(user(tenant, "admin", "admin"))
    first = TENANTS[0]
    power = user(first, "power", "supporter")
    heavy = user(first, "heavy", "supporter")
    loaded.power, loaded.heavy = str(power), str(heavy)
    owners += [(UUID(loaded.tenants[first]), power, "power")] * plan.power_sessions
    owners += [(UUID(loaded.tenants[first]), heavy, "heavy")] * plan.heavy_sessions
    rest = max(0, plan.sessions - plan.power_sessions - plan.heavy_sessions)
    for t, tenant in enumerate(TENANTS):
        share = rest // len(TENANTS) + (1 if t < rest % len(TENANTS) else 0)
        for u in range((share + plan.sessions_per_user - 1) // plan.sessions_per_user):
            user_id = user(tenant, f"user{u:05d}", "supporter")
            n = min(plan.sessions_per_user, share - u * plan.sessions_per_user)
            owners += [(UUID(loaded.tenants[tenant]), user_id, "bulk")] * n

    common = [o for o in owners if o[2] == "bulk" or (o[2] == "power" and plan.power_messages is None)]
    spread = max(0, plan.messages - plan.heavy_sessions * plan.heavy_messages)
    if plan.power_messages is not None:
        spread -= plan.power_sessions * plan.power_messages
    average = max(1.0, spread / max(1, len(common)))
    sessions: list[_Session] = []
    tenant_names = {UUID(v): k for k, v in loaded.tenants.items()}
    for tenant_id, user_id, kind in owners:
        if kind == "heavy":
            count = plan.heavy_messages
        elif kind == "power" and plan.power_messages is not None:
            count = plan.power_messages
        else:
            count = round(rng.uniform(1, 2 * average - 1))
        span = MESSAGE_SPACING * count
        created = now - span - timedelta(seconds=rng.uniform(60, 365 * 86400))
        if rng.random() < 0.01:  # some sessions active (newest message < 24 h old)
            created = now - span - timedelta(seconds=rng.uniform(60, 3600))
        agent = rng.choice(agents[tenant_names[tenant_id]]) if rng.random() < 0.9 else None
        title = f"Conversation {sids.n + 1} about shipment {rng.randint(1000, 9999)}" if rng.random() < 0.8 else None
        sessions.append(_Session(sids.next(), tenant_id, user_id, agent, title, created, count))
    return users, sessions


def _message_records(sessions: list[_Session]) -> Iterator[tuple[object, ...]]:
    ids = _Ids(4)
    roles = ("user", "assistant")
    contents = [c.replace("{n}", str(4700 + i)) for i, c in enumerate(CONTENTS)]
    for s in sessions:
        at = s.created_at
        for j in range(s.messages):
            at += MESSAGE_SPACING
            yield (ids.next(), s.session_id, s.tenant_id, s.user_id, roles[j & 1], contents[j % len(contents)], at)


async def load(owner_dsn: str, plan: Plan, now: datetime | None = None) -> Loaded:
    """Load ``plan`` into an empty, upgraded database (as the superuser of ``owner_dsn``)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    loaded = Loaded(plan=asdict(plan))
    tenant_ids = _Ids(1)
    agent_ids = _Ids(5)
    loaded.tenants = {t: str(tenant_ids.next()) for t in TENANTS}
    agent_records = []
    agents: dict[str, list[UUID]] = {}
    for tenant in TENANTS:
        for name in AGENTS:
            agent_id = agent_ids.next()
            agents.setdefault(tenant, []).append(agent_id)
            agent_records.append((agent_id, UUID(loaded.tenants[tenant]), name, f"{name} of {tenant}", now))
    users, sessions = _sessions(plan, loaded, agents, now)

    connection = await asyncpg.connect(owner_dsn)
    try:
        await connection.execute("SET session_replication_role = replica")
        tenant_records = [(UUID(i), name, now) for name, i in loaded.tenants.items()]
        await connection.copy_records_to_table(
            "tenants", records=tenant_records, columns=["tenant_id", "name", "created_at"]
        )
        await connection.copy_records_to_table(
            "agent_configs",
            records=agent_records,
            columns=["agent_id", "tenant_id", "name", "description", "created_at"],
        )
        await connection.copy_records_to_table(
            "users", records=users, columns=["user_id", "tenant_id", "email", "display_name", "role", "created_at"]
        )
        session_records = []
        for s in sessions:
            last = s.created_at + MESSAGE_SPACING * s.messages if s.messages else None
            session_records.append(
                (
                    s.session_id,
                    s.tenant_id,
                    s.user_id,
                    s.agent_id,
                    s.title,
                    s.created_at,
                    last or s.created_at,
                    s.messages,
                    last,
                )
            )
        columns = [
            "session_id",
            "tenant_id",
            "user_id",
            "agent_id",
            "title",
            "created_at",
            "updated_at",
            "message_count",
            "last_message_at",
        ]
        await connection.copy_records_to_table("sessions", records=session_records, columns=columns)
        if await connection.fetchval("SELECT to_regclass('public.session_counts') IS NOT NULL"):
            per_user: dict[tuple[UUID, UUID], int] = {}
            for s in sessions:
                per_user[s.tenant_id, s.user_id] = per_user.get((s.tenant_id, s.user_id), 0) + 1
            await connection.copy_records_to_table(
                "session_counts",
                records=[(t, u, n) for (t, u), n in per_user.items()],
                columns=["tenant_id", "user_id", "sessions"],
            )
        print(f"   loaded {len(sessions):,} sessions in {time.perf_counter() - started:.0f} s", flush=True)
        messages = sum(s.messages for s in sessions)
        chunk = 1_000_000
        source = _message_records(sessions)
        done = 0
        while done < messages:
            batch = [r for _, r in zip(range(chunk), source, strict=False)]
            await connection.copy_records_to_table(
                "messages",
                records=batch,
                columns=["message_id", "session_id", "tenant_id", "user_id", "role", "content", "created_at"],
            )
            done += len(batch)
            print(f"   messages {done:,}/{messages:,} ({time.perf_counter() - started:.0f} s)", flush=True)
        if await connection.fetchval("SELECT to_regclass('public.search_words') IS NOT NULL"):
            await fill_search_words(connection)  # what the search triggers would have written
            print(f"   search words ({time.perf_counter() - started:.0f} s)", flush=True)
        await connection.execute("SET session_replication_role = origin")
        await connection.execute("VACUUM (ANALYZE) tenants, users, agent_configs, sessions, messages")
        if await connection.fetchval("SELECT to_regclass('public.session_counts') IS NOT NULL"):
            await connection.execute("VACUUM (ANALYZE) session_counts")
        if await connection.fetchval("SELECT to_regclass('public.search_words') IS NOT NULL"):
            await connection.execute("VACUUM (ANALYZE) search_words")
    finally:
        await connection.close()

    power_id = UUID(loaded.power)
    power = sorted((s for s in sessions if s.user_id == power_id), key=lambda s: s.created_at, reverse=True)
    loaded.power_sessions = [str(s.session_id) for s in power[:1000]]
    heavy_id = UUID(loaded.heavy)
    loaded.heavy_sessions = [str(s.session_id) for s in sessions if s.user_id == heavy_id]
    loaded.counts = {
        "tenants": len(TENANTS),
        "users": len(users),
        "sessions": len(sessions),
        "messages": messages,
        "power_sessions": len(power),
        "heavy_sessions": len(loaded.heavy_sessions),
        "tenant0_sessions": sum(1 for s in sessions if s.tenant_id == UUID(loaded.tenants[TENANTS[0]])),
    }
    loaded.seconds = round(time.perf_counter() - started, 1)
    return loaded
