"""The OpenAPI document at /schema/openapi.json: every route with its status codes and the contract's shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import SHAPES

AUTH = {"400", "401", "403", "503"}  # 400: a malformed tenant_id (once the token is valid)
SESSION = AUTH | {"404"}
ROUTES = {
    ("get", "/api/{tenant_id}/sessions"): {"200"} | AUTH,
    ("post", "/api/{tenant_id}/sessions"): {"201"} | AUTH,
    ("get", "/api/{tenant_id}/sessions/{session_id}"): {"200"} | SESSION,
    ("patch", "/api/{tenant_id}/sessions/{session_id}"): {"200"} | SESSION,
    ("delete", "/api/{tenant_id}/sessions/{session_id}"): {"204"} | SESSION,
    ("get", "/api/{tenant_id}/sessions/{session_id}/messages"): {"200"} | SESSION,
    ("post", "/api/{tenant_id}/sessions/{session_id}/messages"): {"201"} | SESSION,
    ("get", "/api/{tenant_id}/agents"): {"200"} | AUTH,
    ("get", "/api/{tenant_id}/me"): {"200"} | AUTH,
    ("get", "/api/{tenant_id}/events"): {"200"} | AUTH,
    ("post", "/api/{tenant_id}/sessions/archive"): {"200"} | AUTH,
    ("get", "/api/{tenant_id}/users"): {"200"} | AUTH,
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


@pytest.mark.parametrize("name", ["tenant_id", "session_id"])
async def test_ids_in_paths_are_documented_as_uuids(openapi, name: str) -> None:
    """(The routes declare them ``:str`` so that a malformed id reaches the guard and the handler, not a 404.)"""
    found = 0
    for path, item in openapi["paths"].items():
        if f"{{{name}}}" not in path:
            continue
        for operation in item.values():
            params = {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
            assert params[name]["schema"] == {"type": "string", "format": "uuid"}, path
            assert params[name]["required"] is True
            found += 1
    assert found >= 5, name


async def test_ids_in_queries_and_bodies_are_documented_as_uuids(openapi) -> None:
    [user_id] = [
        p for p in openapi["paths"]["/api/{tenant_id}/sessions"]["get"]["parameters"] if p["name"] == "user_id"
    ]
    assert user_id["schema"]["oneOf"] == [{"type": "string", "format": "uuid"}, {"type": "null"}]
    agent_id = openapi["components"]["schemas"]["SessionCreate"]["properties"]["agent_id"]
    assert agent_id == {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}


async def test_bodies_and_responses_have_exactly_the_contract_fields(openapi) -> None:
    schemas = openapi["components"]["schemas"]
    for name, fields in SHAPES.items():
        assert set(schemas[name]["properties"]) == fields, name
    assert set(schemas["MessageCreate"]["properties"]["role"]["enum"]) == {"user", "assistant", "system", "tool"}
    assert schemas["MessageCreate"]["properties"]["content"]["maxLength"] == 32_768


async def test_the_events_stream_is_documented_as_server_sent_events(openapi) -> None:
    answers = openapi["paths"]["/api/{tenant_id}/events"]["get"]["responses"]
    [(media_type, content)] = answers["200"]["content"].items()
    assert media_type == "text/event-stream"
    event = openapi["components"]["schemas"]["StreamEvent"]
    assert content["schema"] == {"$ref": "#/components/schemas/StreamEvent"}
    assert set(event["properties"]) == {"event", "data", "id"}
    assert set(event["properties"]["event"]["enum"]) == {"session", "session_deleted", "message", "resync"}
    assert set(answers["503"]["content"]) == {"application/json"}  # errors stay JSON


async def test_the_sidebar_parameters_are_documented(openapi) -> None:
    """Contract §5: the list's filters and cursor, the history's order and cursor, the users directory's paging."""

    def parameters(path: str) -> dict[str, Any]:
        return {p["name"]: p for p in openapi["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    listing = parameters("/api/{tenant_id}/sessions")
    assert {"archived", "pinned", "agent_id", "cursor"} <= set(listing)
    assert listing["archived"]["schema"]["enum"] == ["false", "true", "all"]
    assert listing["archived"]["schema"]["default"] == "false"
    assert listing["agent_id"]["schema"]["oneOf"][0] == {"type": "string", "format": "uuid"}
    assert "offset" in listing["cursor"]["description"]
    history = parameters("/api/{tenant_id}/sessions/{session_id}/messages")
    assert history["order"]["schema"]["enum"] == ["desc", "asc"]
    assert history["order"]["schema"]["default"] == "asc"
    assert "cursor" in history
    users = parameters("/api/{tenant_id}/users")
    assert (users["limit"]["schema"]["minimum"], users["limit"]["schema"]["maximum"]) == (1, 100)
    assert users["limit"]["schema"]["default"] == 50
    archive = openapi["components"]["schemas"]["SessionArchive"]["properties"]["session_ids"]
    assert (archive["minItems"], archive["maxItems"]) == (1, 100)
    assert archive["items"] == {"type": "string", "format": "uuid"}
    update = openapi["components"]["schemas"]["SessionUpdate"]
    assert not update.get("required")  # any subset, but not none: {} is refused (400)
    assert update["minProperties"] == 1
    assert "minProperties" not in openapi["components"]["schemas"]["SessionCreate"]  # {} is a valid create
