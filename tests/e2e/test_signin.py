"""Signing in as a seeded user: offered in development (the development key), absent in production."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from app.seed import demo_id
from tests.e2e.conftest import ARTIFACTS, screenshot
from tests.factories import World


async def test_development_offers_seeded_users(page: Page, live_server_with, seeded) -> None:
    with live_server_with(app_env="development", jwt_secret=None) as url:
        await page.goto(url)
        await expect(page.locator("#dev-signin")).to_be_visible()
        await screenshot(page, "sign-in")
        picker = page.get_by_label("Seeded user", exact=True)
        value = await picker.locator("option", has_text="anna@etms.example").get_attribute("value")
        assert value
        await picker.select_option(value)
        await page.get_by_role("button", name="Sign in as this user").click()
        await expect(page.locator("#who")).to_contain_text("anna@etms.example")
        async with httpx.AsyncClient(base_url=url) as http:
            token = (
                await http.post(
                    "/dev/token", json={"tenant_id": str(demo_id("eTMS")), "user_id": str(demo_id("eTMS", "anna"))}
                )
            ).json()["token"]
            path, headers = f"/api/{demo_id('eTMS')}/sessions", {"Authorization": f"Bearer {token}"}
            # The sidebar: the pinned group first, then the first page of the others.
            pinned = (await http.get(path, params={"pinned": "true", "limit": 100}, headers=headers)).json()
            listed = (await http.get(path, params={"pinned": "false"}, headers=headers)).json()
        assert listed["total"] > 0
        await expect(page.locator(".session-title")).to_have_text(
            [s["title"] or "Untitled" for s in pinned["sessions"] + listed["sessions"]]
        )
        # The demo as the README shows it (docs/screenshot.png is this file): Anna's newest session
        # below the pinned ones.
        assert pinned["sessions"]
        newest = listed["sessions"][0]
        await page.locator(f'.session[data-session-id="{newest["session_id"]}"]').click()
        await expect(page.locator(".message")).to_have_count(newest["message_count"])
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "demo.png"))


async def test_production_has_no_dev_sign_in(page: Page, live_server_with, world: World, seeded) -> None:
    with live_server_with(app_env="production") as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/dev/users")).status_code == 404
        await page.goto(url)
        await expect(page.get_by_label("Access token (JWT)")).to_be_visible()
        await expect(page.locator("#dev-signin")).to_be_hidden()
        assert await page.locator("#dev-user option").count() == 0
        # Pasting a token still works.
        await page.get_by_label("Access token (JWT)").fill(world.a.bob.token)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page.locator(".session")).to_have_count(2)
