"""The OpenAPI document at /schema/openapi.json: every route with its status codes and the contract's shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import SHAPES

AUTH = {"401", "403", "503"}
SESSION = AUTH | {"400", "404"}
ROUTES = {
    ("get", "/api/{tenant_id}/sessions"): {"200", "400"} | AUTH,
    ("post", "/api/{tenant_id}/sessions"): {"201", "400"} | AUTH,
    ("get", "/api/{tenant_id}/sessions/{session_id}"): {"200"} | SESSION,
    ("patch", "/api/{tenant_id}/sessions/{session_id}"): {"200"} | SESSION,
    ("delete", "/api/{tenant_id}/sessions/{session_id}"): {"204"} | SESSION,
    ("get", "/api/{tenant_id}/sessions/{session_id}/messages"): {"200"} | SESSION,
    ("post", "/api/{tenant_id}/sessions/{session_id}/messages"): {"201"} | SESSION,
    ("get", "/api/{tenant_id}/agents"): {"200"} | AUTH,
    ("get", "/api/{tenant_id}/me"): {"200"} | AUTH,
}


@pytest.fixture
async def openapi(client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize(("route", "codes"), ROUTES.items(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
async def test_each_route_documents_its_status_codes(openapi, route, codes) -> None:
    method, path = route
    operation = openapi["paths"][path][method]
    documented = set(operation["responses"])
    assert codes <= documented, sorted(codes - documented)
    for code in documented - {"200", "201", "204"}:
        schema = operation["responses"][code]["content"]["application/json"]["schema"]
        assert {"status_code", "detail"} <= set(schema["properties"]), code
    assert operation["security"] == [{"BearerToken": []}]


async def test_session_ids_in_paths_are_documented_as_uuids(openapi) -> None:
    for path, item in openapi["paths"].items():
        if "{session_id}" not in path:
            continue
        for operation in item.values():
            params = {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
            assert params["session_id"]["schema"] == {"type": "string", "format": "uuid"}, path
            assert params["session_id"]["required"] is True


async def test_bodies_and_responses_have_exactly_the_contract_fields(openapi) -> None:
    schemas = openapi["components"]["schemas"]
    for name, fields in SHAPES.items():
        assert set(schemas[name]["properties"]) == fields, name
    assert set(schemas["MessageCreate"]["properties"]["role"]["enum"]) == {"user", "assistant", "system", "tool"}
    assert schemas["MessageCreate"]["properties"]["content"]["maxLength"] == 32_768
