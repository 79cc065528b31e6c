"""The sidebar's search box in headless Chromium: debounced, snippets, terms highlighted with DOM nodes, `/`."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_live import other_client
from tests.e2e.test_sidebar import sign_in
from tests.factories import TestUser, World, add_message, create_session, create_user

HOSTILE = '<img src=x onerror="document.title=1"> freight <b>note</b>'


@pytest.fixture
async def dora(owner: asyncpg.Pool, world: World) -> TestUser:
    """A supporter whose sessions hold the words searched below; a colleague and tenant B hold them too."""
    tenant = world.a
    user = await create_user(owner, tenant.tenant_id, "supporter", world.secret)
    shipping = await create_session(owner, user, title="Container questions")
    await add_message(owner, tenant.tenant_id, shipping, "Hello, a question about customs.")
    await add_message(owner, tenant.tenant_id, shipping, "Where is shipment 4711? It left Rotterdam on Monday.")
    spread = await create_session(owner, user, title="Spread over two")
    await add_message(owner, tenant.tenant_id, spread, "shipment delayed")
    await add_message(owner, tenant.tenant_id, spread, "order 4700")  # ship + 47 in two messages: no match
    titled = await create_session(owner, user, title="Shipment 4711 invoice")
    hostile = await create_session(owner, user, title="Markup")
    await add_message(owner, tenant.tenant_id, hostile, HOSTILE)
    for other in (tenant.bob, world.b.alice):  # never matched, counted or quoted for dora
        foreign = await create_session(owner, other, title="Foreign shipment 4711 title")
        await add_message(owner, other.tenant_id, foreign, "Foreign shipment 4711 message")
    assert titled
    return user


async def test_search_box(page: Page, live_server: str, dora: TestUser) -> None:
    searches: list[Request] = []
    page.on("request", lambda r: searches.append(r) if "/sessions?" in r.url and "q=" in r.url else None)
    await sign_in(page, live_server, dora)
    await expect(page.locator(".session")).to_have_count(4)

    # "/" focuses the box from anywhere but a field.
    await page.locator(".session").first.focus()
    await page.keyboard.press("/")
    box = page.get_by_label("Search sessions")
    await expect(box).to_be_focused()
    await expect(box).to_have_value("")

    # Debounced: typing a word sends one search, not one per key.
    await box.press_sequentially("ship 47", delay=40)
    results = page.locator(".session")
    await expect(results).to_have_count(2)
    assert len(searches) == 1
    assert "q=ship+47" in searches[0].url
    api = await other_client(live_server, dora, "GET", "/sessions?q=ship 47")
    assert await page.locator(".session-title").all_text_contents() == [s["title"] for s in api["sessions"]]
    await expect(page.locator("#search-status")).to_have_text("2 sessions match.")
    await expect(page.locator("#session-total")).to_have_text("(2)")

    # The snippet of the matching message, its matched word beginnings marked (DOM nodes, not HTML).
    hit = page.locator(".session", has_text="Container questions")
    await expect(hit.locator(".snippet")).to_contain_text("Where is shipment 4711?")
    assert await hit.locator(".snippet mark").all_text_contents() == ["ship", "47"]
    titled = page.locator(".session", has_text="Shipment 4711 invoice")
    assert await titled.locator(".session-title mark").all_text_contents() == ["Ship", "47"]
    html = await page.locator("#session-list").inner_html()
    assert "Foreign" not in html
    assert "Spread over two" not in html
    await screenshot(page, "search")

    # ArrowDown goes from the box to the results; Enter opens one.
    await box.focus()
    await page.keyboard.press("ArrowDown")
    await expect(results.first).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#chat-title")).to_have_text(api["sessions"][0]["title"])

    # Markup in a matched message is quoted as text.
    await box.fill("freight")
    await expect(page.locator(".snippet")).to_have_count(1)
    await expect(page.locator(".snippet")).to_have_text(HOSTILE)
    assert await page.locator(".snippet mark").all_text_contents() == ["freight"]
    assert await page.locator("#session-list img, #session-list b").count() == 0
    assert await page.title() == "Chat sessions"

    # No match; a query without letters or digits is not sent; clearing the box brings the list back.
    await box.fill("zanzibar")
    await expect(page.locator("#empty-state")).to_have_text("No session matches “zanzibar”.")
    await expect(page.locator("#search-status")).to_have_text("0 sessions match.")
    sent = len(searches)
    await box.fill("%%")
    await expect(page.locator("#search-status")).to_have_text("Type letters or digits to search.")
    await page.wait_for_timeout(600)
    assert len(searches) == sent
    await box.fill("")
    await expect(results).to_have_count(4)
    await expect(page.locator("#search-status")).to_have_text("")
    await expect(page.locator(".session mark")).to_have_count(0)


async def test_search_results_scroll_by_cursor_and_follow_the_view(
    page: Page, live_server: str, owner: asyncpg.Pool, world: World
) -> None:
    user = await create_user(owner, world.a.tenant_id, "supporter", world.secret)
    for index in range(23):
        await create_session(owner, user, title=f"Pallet report {index:02d}")
    archived = await create_session(owner, user, title="Pallet report archived")
    await owner.execute("UPDATE sessions SET archived = true WHERE session_id = $1", archived)
    await create_session(owner, user, title="Something else")
    await sign_in(page, live_server, user)
    await page.get_by_label("Search sessions").fill("pallet")
    titles = page.locator(".session-title")
    await expect(titles).to_have_count(10)
    await expect(page.locator("#search-status")).to_have_text("23 sessions match.")
    for count in (20, 23):
        await page.locator("#sidebar").evaluate("(s) => s.scrollTo(0, s.scrollHeight)")
        await expect(titles).to_have_count(count)
    shown = await titles.all_text_contents()
    assert len(set(shown)) == 23  # no page repeated a row
    assert "Pallet report archived" not in shown
    # The Archived view searches the archived sessions only.
    await page.get_by_role("button", name="Archived", exact=True).click()
    await expect(titles).to_have_text(["Pallet report archived"])
    await expect(page.locator(".session-title mark")).to_have_text(["Pallet"])
