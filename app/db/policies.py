"""The repeatable step of ``db upgrade``: ``rls_policies/*.sql`` (RLS, policies, their functions, triggers, grants).

Migrations own the schema and never read these files. This step runs after them, in one
transaction: it drops every policy of the tables the files name, then executes the files
in order (``00_context.sql`` first), which create everything again. So after an upgrade
the live policies are exactly the files, and the audit can replay the same step in a
rolled-back transaction to see what drifted.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

POLICIES_DIR = Path(__file__).resolve().parents[2] / "rls_policies"

# Every policy of the named tables, as DROP statements.
_DROP_POLICIES_SQL = """
SELECT format('DROP POLICY %I ON %I.%I', policyname, schemaname, tablename) AS sql
FROM pg_policies
WHERE schemaname = 'public' AND tablename = ANY($1::text[])
"""


def policy_files(directory: Path = POLICIES_DIR) -> list[Path]:
    """``rls_policies/*.sql`` in the order they are applied (``00_context.sql`` first)."""
    return sorted(directory.glob("*.sql"))


def policy_tables(directory: Path = POLICIES_DIR) -> list[str]:
    """The tables the files are about: one file per table, named after it."""
    return [path.stem for path in policy_files(directory) if not path.stem[0].isdigit()]


async def apply_policies(connection: asyncpg.Connection, directory: Path = POLICIES_DIR) -> None:
    """Drop the policies of the policy tables, then execute every file; inside the caller's transaction.

    A file holds several statements, so it goes through ``execute()`` without arguments
    (the simple protocol: no prepared statement).
    """
    if not connection.is_in_transaction():
        raise RuntimeError("apply_policies needs an open transaction")
    for row in await connection.fetch(_DROP_POLICIES_SQL, policy_tables(directory)):
        await connection.execute(row["sql"])
    for path in policy_files(directory):
        await connection.execute(path.read_text())
