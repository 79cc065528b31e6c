"""Fixtures of the attack suite: one pair of tenants per test module (the attacks only read it)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, make_world


@pytest.fixture(scope="module")
async def victims(owner: asyncpg.Pool) -> World:
    """Tenants A and B shared by a module's attacks (which must change nothing; the writes that
    succeed by design run on sessions they create themselves)."""
    return await make_world(owner, TEST_JWT_SECRET)
