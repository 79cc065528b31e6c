"""Schemathesis against the app's own OpenAPI document, on a real server (uvicorn on loopback).

Every operation of ``/schema/openapi.json`` is fuzzed with a bounded number of examples
(``FUZZ_EXAMPLES``, default 40 per operation). The requests carry a valid token of a
seeded user and that user's tenant as ``tenant_id``, so they get past the guard and reach
the handlers; ``session_id`` is, half of the time, one of the tenant's real sessions.
Positive data (valid per the schema) for every operation; negative data (violating it) for
every operation with parameters: malformed input must be a documented 4xx, never a 5xx.
Every response must be a non-5xx that conforms to its documented schema, status code,
content type and headers (schemathesis' default checks).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.exceptions import ValidationException
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from app.main import create_app
from app.sessions.search import parse_q
from app.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.factories import World, make_token, make_world
from tests.live import live_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# A 200 of GET /events is an open stream; the fuzzer's token for it expires within a second, so each
# such response ends (at exp) and is validated. Fewer examples: each stream lasts up to that second.
STREAM_EXAMPLES = min(EXAMPLES, 10)


@pytest.fixture(scope="module")
async def fuzz_world(owner) -> World:
    """Two tenants; the fuzzer acts as tenant A's admin (who reads the whole tenant)."""
    return await make_world(owner, TEST_JWT_SECRET)


@pytest.fixture(scope="module")
def fuzz_server(database, fuzz_world: World) -> Iterator[str]:
    """A real API process on the test database; its base URL."""
    env = {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    with live_server(env) as server:
        yield server.url


def _operations() -> list[Any]:
    # The document the server serves, built without a database (the app is not started).
    document = create_app(Settings(app_env="development")).openapi_schema.to_schema()
    operations = schemathesis.openapi.from_dict(document).get_all_operations()
    return [result.ok() for result in operations]  # type: ignore[union-attr]  # an Err has no ok(): the run fails


OPERATIONS = _operations()
# Negative data (values that violate the schema) for every operation that takes parameters;
# DELETE last, so the other operations still find the sessions it removes.
RUNS = sorted(
    [(op, GenerationMode.POSITIVE) for op in OPERATIONS]
    + [(op, GenerationMode.NEGATIVE) for op in OPERATIONS if any(True for _ in op.iter_parameters())],
    key=lambda run: run[0].method.upper() == "DELETE",
)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("operation", "mode"), RUNS, ids=[f"{op.label} {mode}" for op, mode in RUNS])
def test_every_operation_answers_without_5xx_and_as_documented(
    operation: Any, mode: GenerationMode, fuzz_server: str, fuzz_world: World
) -> None:
    tenant = fuzz_world.a
    # On a session's routes the fuzzer is alice (a supporter): her own sessions (weighted) reach
    # the success paths, the others' are 404s. On the tenant's routes it is the admin.
    user = tenant.alice if "{session_id}" in operation.path else tenant.admin
    streams = operation.path.endswith("/events")
    own = sorted(str(s) for s in tenant.sessions[tenant.alice.user_id])
    session_ids = own * 3 + sorted(str(s) for s in tenant.all_session_ids if str(s) not in own)
    agent_ids = sorted(str(a) for a in tenant.agents.values())
    statuses: Counter[int] = Counter()
    strategy = operation.as_strategy(mode)

    @given(case=strategy, pick=st.integers(min_value=0, max_value=2 * len(session_ids) - 1))
    @settings(
        max_examples=STREAM_EXAMPLES if streams else EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def fuzz(case: Any, pick: int) -> None:
        parameters = case.path_parameters or {}
        # Well-formed ids are pointed at the seeded tenant (and half of the time at one of its
        # sessions), so the request passes the guard; malformed ones are left to be refused.
        if _is_uuid(parameters.get("tenant_id")):
            parameters["tenant_id"] = str(tenant.tenant_id)
        if _is_uuid(parameters.get("session_id")) and pick < len(session_ids):
            parameters["session_id"] = session_ids[pick]
        # A well-formed agent_id names one of the tenant's agents (another is a 400 by contract).
        if isinstance(case.body, dict) and _is_uuid(case.body.get("agent_id")):
            case.body["agent_id"] = agent_ids[pick % len(agent_ids)]
        # A search text without a word (or too long once trimmed) is a 400 by contract, not by schema.
        if mode is GenerationMode.POSITIVE and isinstance((case.query or {}).get("q"), str):
            try:
                parse_q(case.query["q"])
            except ValidationException:
                case.query["q"] = "session"
        # A cursor is opaque and signed: any string the fuzzer makes up is a 400 by contract (and
        # one made by the server is bound to parameters the fuzzer draws anew): none is sent.
        if mode is GenerationMode.POSITIVE and case.query:
            case.query.pop("cursor", None)
        headers = user.headers
        if streams:
            token = make_token(TEST_JWT_SECRET, user.user_id, user.tenant_id, exp=int(time.time()) + 1)
            headers = {"Authorization": f"Bearer {token}"}
        response = case.call_and_validate(
            base_url=fuzz_server,
            headers=headers,
            # Unknown query parameters are ignored by design, and the valid token replaces a
            # mutated header: "invalid data must be refused" does not hold for every negative case.
            excluded_checks=[negative_data_rejection] if mode is GenerationMode.NEGATIVE else [],
        )
        statuses[response.status_code] += 1

    fuzz()
    print(f"fuzz {operation.label} {mode}: {statuses.total()} requests, statuses {dict(sorted(statuses.items()))}")
    assert statuses.total() > 0
