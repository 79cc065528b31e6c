"""Fixtures of the attack suite: one pair of tenants per test module (the attacks only read it), and
throwaway copies of an upgraded database to break on purpose (the audit and pgrls tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from app.audit import Report, run_audit
from app.db.engine import get_engine
from app.db.upgrade import upgrade
from tests.conftest import TEST_JWT_SECRET
from tests.conftest import TestDatabase as Database
from tests.factories import World, make_world


@pytest.fixture(scope="module")
async def victims(owner: asyncpg.Pool) -> World:
    """Tenants A and B shared by a module's attacks (which must change nothing; the writes that
    succeed by design run on sessions they create themselves)."""
    return await make_world(owner, TEST_JWT_SECRET)


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` on the same server."""
    base, _, query = dsn.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


def as_role(dsn: str, role: str, password: str) -> str:
    """``dsn`` logging in as ``role``."""
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://{role}:{password}@{rest.split('@', 1)[1]}"


async def execute(dsn: str, *statements: str) -> None:
    """Run ``statements`` one after the other on ``dsn``."""
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


THROWAWAY_PASSWORD = "y" * 16


@dataclass(frozen=True)
class Throwaway:
    """A throwaway upgraded database and the name of its own runtime role."""

    dsn: str
    role: str

    @property
    def runtime_dsn(self) -> str:
        """The copy, logging in as its runtime role."""
        return as_role(self.dsn, self.role, THROWAWAY_PASSWORD)

    def break_it(self, *statements: str) -> None:
        """Run SQL as the owner to break the database on purpose."""
        asyncio.run(execute(self.dsn, *statements))

    def audit(self, **options: Any) -> Report:
        """Audit it (runtime role: the throwaway's)."""
        return asyncio.run(run_audit(self.dsn, self.role, **options))


@pytest.fixture(scope="module")
def template(database: Database) -> Iterator[tuple[str, str]]:
    """An upgraded template database (with a runtime role of its own): (server DSN, template name)."""
    server = with_database(database.owner_dsn, "postgres")
    name = f"chat_audit_tmpl_{uuid.uuid4().hex[:8]}"
    role = f"chat_audit_{uuid.uuid4().hex[:8]}"
    engine = get_engine()
    saved = dict(engine.config)
    asyncio.run(execute(server, f'CREATE DATABASE "{name}"'))
    try:
        target = with_database(server, name)
        asyncio.run(upgrade(target, as_role(target, role, "x" * 16)))
    finally:
        engine.config = saved
    try:
        yield server, name
    finally:
        asyncio.run(execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(execute(server, f'DROP ROLE IF EXISTS "{role}"'))


@pytest.fixture
def throwaway(template: tuple[str, str]) -> Iterator[Throwaway]:
    """A fresh copy of the template, dropped afterwards, audited with a role of its own."""
    server, name = template
    copy = f"chat_audit_{uuid.uuid4().hex[:10]}"
    role = f"chat_audit_role_{uuid.uuid4().hex[:8]}"
    asyncio.run(
        execute(
            server,
            f'CREATE DATABASE "{copy}" TEMPLATE "{name}"',
            # A database's own privileges are not copied from its template: revoke again what db upgrade did.
            f'REVOKE TEMPORARY, CREATE ON DATABASE "{copy}" FROM PUBLIC',
            f"CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{THROWAWAY_PASSWORD}'",
            f'GRANT chat_runtime TO "{role}"',
        )
    )
    try:
        yield Throwaway(with_database(server, copy), role)
    finally:
        asyncio.run(execute(server, f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)', f'DROP ROLE "{role}"'))
