"""The API documentation at /schema in headless Chromium: rendered from our own origin, under its CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot

# Runs before any script of the page (outside its CSP) and keeps every CSP violation the browser reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${where})`);
});
"""


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_docs_render_from_our_origin_only_under_the_csp(page: Page, live_server: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.add_init_script(RECORD_VIOLATIONS)

    response = await page.goto(f"{live_server}/schema")
    assert response is not None
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp

    # Swagger UI rendered the document: its title, and the operations of the API.
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Chat Sessions API")
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/health"))
    await expect(health).to_have_count(1)
    await expect(page.locator(".opblock-summary-path", has_text="/api/{tenant_id}/sessions").first).to_be_visible()

    # "Try it out" calls the API from the page: allowed by connect-src 'self'.
    await health.locator(".opblock-summary").click()
    await health.get_by_role("button", name="Try it out").click()
    await health.get_by_role("button", name="Execute").click()
    await expect(health.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200")
    await screenshot(page, "docs")

    violations = await page.evaluate("window.__violations")
    assert violations == []
    foreign = [url for url in requested if not url.startswith("data:") and origin(url) != live_server]
    assert foreign == []
    assert f"{live_server}/schema/assets/swagger-ui/swagger-ui-bundle.js" in requested
    assert f"{live_server}/schema/openapi.json" in requested
