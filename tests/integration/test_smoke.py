from tests.factories import World


async def test_supporter_lists_own_sessions(client, world: World) -> None:
    response = await client.get(world.a.path(), headers=world.a.alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    assert {s["session_id"] for s in body["sessions"]} == {str(s) for s in world.a.sessions[world.a.alice.user_id]}
