"""The page's own favicon, and a blank message that says why it was not sent."""

from __future__ import annotations

import asyncpg
from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_sidebar import sign_in
from tests.factories import World

ICON_LOADS = """() => new Promise((resolve) => {
  const image = new Image();
  image.onload = () => resolve(image.naturalWidth > 0);
  image.onerror = () => resolve(false);
  image.src = document.querySelector('link[rel="icon"]').href;
})"""


async def test_the_favicon_comes_from_our_own_origin(page: Page, live_server: str) -> None:
    await page.goto(live_server)
    href = await page.locator('link[rel="icon"]').get_attribute("href")
    assert href == "/favicon.svg"
    response = await page.request.get(f"{live_server}{href}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert await page.evaluate(ICON_LOADS)  # allowed by the page's CSP (img-src), which the fixture also watches


async def test_a_blank_message_says_why_nothing_was_sent(
    page: Page, live_server: str, world: World, owner: asyncpg.Pool
) -> None:
    alice = world.a.alice
    session_id = world.a.sessions[alice.user_id][0]
    before = await owner.fetchval("SELECT message_count FROM sessions WHERE session_id = $1", session_id)
    await sign_in(page, live_server, alice)
    await page.locator(f'.session[data-session-id="{session_id}"]').click()
    box = page.get_by_label("Message", exact=True)
    hint = page.locator("#composer-hint")
    await expect(hint).to_be_empty()
    for blank in ("", "  \n\t "):
        await box.fill(blank)
        await page.get_by_role("button", name="Send").click()
        await expect(hint).to_have_text("Type a message first: a blank message is not sent.")
        await expect(box).to_have_attribute("aria-invalid", "true")
        await expect(box).to_be_focused()
    await screenshot(page, "blank-message")
    assert await owner.fetchval("SELECT message_count FROM sessions WHERE session_id = $1", session_id) == before
    await box.press_sequentially("Now with words")  # typing clears the hint
    await expect(hint).to_be_empty()
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".message .content").last).to_have_text("Now with words")
    assert await owner.fetchval("SELECT message_count FROM sessions WHERE session_id = $1", session_id) == before + 1
