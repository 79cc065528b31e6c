"""An outside prover agrees: ``pgrls lint`` finds nothing and ``pgrls verify`` proves every tenant table.

pgrls (PyPI) lints RLS and proves tenant isolation with Z3. It runs here on a freshly
upgraded copy of the schema with the committed ``pgrls.toml``, exactly as a DBA would run
it. The negative controls break a copy on purpose and see pgrls object, so these tests
can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import Throwaway

PROJECT = Path(__file__).resolve().parents[2]
PGRLS = [sys.executable, "-m", "pgrls"]
MODES = ("anon", "cross-tenant", "write")
TENANT_TABLES = {
    "access_log",
    "agent_configs",
    "messages",
    "search_words",
    "session_counts",
    "sessions",
    "tenants",
    "users",
}


def pgrls(*args: str) -> subprocess.CompletedProcess[str]:
    """Run pgrls with the project's configuration."""
    return subprocess.run(
        [*PGRLS, *args, "--config", str(PROJECT / "pgrls.toml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def verify(dsn: str, mode: str) -> tuple[int, dict[str, str]]:
    """``pgrls verify --strict`` in ``mode``: its exit status and the verdict of each table."""
    result = pgrls(
        "verify",
        "--strict",
        "--mode",
        mode,
        "--auth-function",
        "rls.tenant_id",
        "--format",
        "json",
        "--database-url",
        dsn,
    )
    body = json.loads(result.stdout)
    verdicts = {t["table"].removeprefix("public."): t["verdict"] for t in body["tables"]}
    return result.returncode, verdicts


def test_lint_finds_nothing(throwaway: Throwaway) -> None:
    result = pgrls("lint", "--database-url", throwaway.dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_verify_proves_every_tenant_table(throwaway: Throwaway, mode: str) -> None:
    status, verdicts = verify(throwaway.dsn, mode)
    assert verdicts == dict.fromkeys(TENANT_TABLES, "isolated")
    assert status == 0


def test_lint_reports_a_policy_to_public(throwaway: Throwaway) -> None:
    throwaway.break_it("CREATE POLICY peek ON messages FOR SELECT USING (tenant_id = (SELECT rls.tenant_id()))")
    result = pgrls("lint", "--database-url", throwaway.dsn)
    assert result.returncode != 0
    assert "SEC003" in result.stdout
    assert "public.messages.peek" in result.stdout


def test_verify_fails_the_table_whose_tenant_floor_is_gone(throwaway: Throwaway) -> None:
    throwaway.break_it(
        "DROP POLICY messages_tenant_floor ON messages",
        "CREATE POLICY messages_everyone ON messages FOR SELECT TO chat_runtime USING (true)",
    )
    others = dict.fromkeys(TENANT_TABLES - {"messages"}, "isolated")
    status, verdicts = verify(throwaway.dsn, "anon")  # a session without context reads every message
    assert verdicts == {**others, "messages": "leak"}
    assert status != 0
    status, verdicts = verify(throwaway.dsn, "cross-tenant")  # no tenant equality left to prove
    assert verdicts == {**others, "messages": "unverified"}
    assert status != 0
