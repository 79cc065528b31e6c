"""The schema evolves safely: migrations are frozen history, the policies a step after them.

A policy may use a column that only the newest migration adds, and a fresh install still
upgrades from zero: ``db upgrade`` runs every migration first and applies ``rls_policies/``
after them. (When migrations applied the live policy files, the first such policy broke
every fresh install at the migration that applied it.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import TEST_RUNTIME_PASSWORD
from tests.conftest import TestDatabase as Database

PROJECT = Path(__file__).resolve().parents[2]

NEWEST_MIGRATION = """
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2999-01-01T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "sessions.archived_at (a test's migration)"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="chat", description=DESCRIPTION)

    async def run() -> None:
        transaction = engine_finder().current_transaction.get()
        await transaction.connection.execute("ALTER TABLE sessions ADD COLUMN archived_at timestamptz")

    manager.add_raw(run)
    return manager
"""

POLICY_ON_THE_NEW_COLUMN = """
CREATE POLICY sessions_not_archived ON public.sessions AS RESTRICTIVE FOR UPDATE TO chat_runtime, chat_migrator
    USING (archived_at IS NULL);
"""


def test_migrations_never_read_live_code_or_policy_files() -> None:
    for path in sorted((PROJECT / "piccolo_migrations").glob("*.py")):
        text = path.read_text()
        assert "from app" not in text, path.name
        assert "import app" not in text, path.name
        assert "rls_policies" not in text, path.name


def clone_with(tmp_path: Path, migration: str, policy: str = "") -> Path:
    """A copy of the project with one more migration (and, appended to sessions.sql, one more policy)."""
    clone = tmp_path / "clone"
    for part in ("app", "piccolo_migrations", "rls_policies"):
        shutil.copytree(PROJECT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "piccolo_conf.py", clone / "piccolo_conf.py")
    (clone / "piccolo_migrations" / "chat_9999_newest.py").write_text(migration)
    with (clone / "rls_policies" / "sessions.sql").open("a") as policies:
        policies.write(policy)
    return clone


async def sql(dsn: str, statement: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


@pytest.fixture
def empty_database(database: Database) -> Iterator[str]:
    """The DSN of a new, empty database on the suite's server (dropped afterwards)."""
    name = f"chat_evolve_{uuid.uuid4().hex[:10]}"
    server = database.owner_dsn.rsplit("/", 1)[0] + "/postgres"
    asyncio.run(sql(server, f'CREATE DATABASE "{name}"'))
    try:
        yield database.owner_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def upgrade_in(clone: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    """``python -m app db upgrade`` of the clone on ``dsn``."""
    env = {**os.environ, "DATABASE_URL": dsn, "APP_DB_PASSWORD": TEST_RUNTIME_PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_fresh_install_upgrades_when_a_policy_uses_the_newest_migrations_column(
    tmp_path: Path, empty_database: str
) -> None:
    result = upgrade_in(clone_with(tmp_path, NEWEST_MIGRATION, POLICY_ON_THE_NEW_COLUMN), empty_database)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(list((PROJECT / "piccolo_migrations").glob("chat_*.py"))) + 1  # the project's and the test's
    assert f"migrations: {count} applied, {count} in all" in result.stdout
    assert "already complete" not in result.stdout  # Piccolo's own lines stay out of the output
    policy = asyncio.run(sql(empty_database, "SELECT qual FROM pg_policies WHERE policyname = 'sessions_not_archived'"))
    assert policy == "(archived_at IS NULL)"


def test_a_failing_migration_stops_the_upgrade_with_what_piccolo_said(tmp_path: Path, empty_database: str) -> None:
    broken = NEWEST_MIGRATION.replace("ADD COLUMN archived_at timestamptz", "ADD COLUMN title text")
    result = upgrade_in(clone_with(tmp_path, broken), empty_database)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "migrations failed" in result.stderr
    assert "2999-01-01T00:00:00:000000" in result.stderr  # which migration
    assert 'column "title" of relation "sessions" already exists' in result.stderr
    # Nothing of the step after the migrations ran.
    assert asyncio.run(sql(empty_database, "SELECT count(*) FROM pg_policies")) == 0


async def test_the_policy_step_needs_a_transaction(database: Database) -> None:
    from app.db.policies import apply_policies

    connection = await asyncpg.connect(database.owner_dsn)
    try:
        with pytest.raises(RuntimeError, match="transaction"):
            await apply_policies(connection)
    finally:
        await connection.close()
