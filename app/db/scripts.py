"""Running multi-statement SQL files: the migrations' raw steps and ``rls_policies/``."""

from __future__ import annotations

from pathlib import Path

from app.db.engine import get_engine

POLICIES_DIR = Path(__file__).resolve().parents[2] / "rls_policies"


def policy_files() -> list[Path]:
    """``rls_policies/*.sql`` in the order they are applied (``00_context.sql`` first)."""
    return sorted(POLICIES_DIR.glob("*.sql"))


async def execute_script(sql: str) -> None:
    """Execute ``sql`` (several statements, no parameters) in the current transaction.

    Piccolo's ``raw``/``run_ddl`` prepare their statement, which PostgreSQL refuses for
    more than one command, so the script goes through the connection's ``execute()``.
    """
    transaction = get_engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("execute_script needs an open transaction")
    await transaction.connection.execute(sql)


async def apply_policies() -> None:
    """Apply every file of ``rls_policies/`` (each is idempotent) in the current transaction.

    A table's file (``<table>.sql``) waits until the migration that creates the table has run.
    """
    transaction = get_engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("apply_policies needs an open transaction")
    for path in policy_files():
        table = None if path.stem[0].isdigit() else f"public.{path.stem}"
        if table and not await transaction.connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            continue
        await execute_script(path.read_text())
