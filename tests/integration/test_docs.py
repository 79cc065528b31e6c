"""The documentation at /schema: our own page, pinned vendored assets, no third-party origin, security headers."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

DOCS_DIR = Path(__file__).resolve().parents[2] / "app" / "web" / "docs"

PAGES = ["/", "/schema", "/schema/", "/schema/swagger"]
LITESTAR_SITES = ["/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/scalar"]


class Tags(HTMLParser):
    """Every tag with its attributes, and the text inside each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def assert_security_headers(headers) -> None:
    csp = {
        d.split()[0]: d.split()[1:] for d in (part.strip() for part in headers["content-security-policy"].split(";"))
    }
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no other origin
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", PAGES)
async def test_pages_send_the_security_headers_and_load_only_our_own_scripts(client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response.headers)
    tags = parse(response.text)
    assert tags.script_text == []  # no inline script
    assert not [attrs for _, attrs in tags.tags if any(name.startswith("on") for name in attrs)]  # no handlers
    sources = [attrs.get("src") or attrs.get("href") for tag, attrs in tags.tags if tag in {"script", "link"}]
    assert sources
    assert all(source and source.startswith("/") and not source.startswith("//") for source in sources), sources
    for source in sources:  # each one is served
        assert (await client.get(source)).status_code == 200, source


async def test_the_docs_page_starts_the_vendored_swagger_ui(client) -> None:
    tags = parse((await client.get("/schema")).text)
    scripts = [attrs["src"] for tag, attrs in tags.tags if tag == "script"]
    assert scripts == ["/schema/assets/swagger-ui/swagger-ui-bundle.js", "/schema/assets/docs.js"]
    root = next(attrs for tag, attrs in tags.tags if attrs.get("id") == "swagger-ui")
    assert root["data-openapi"] == "/schema/openapi.json"
    for script in scripts:
        asset = await client.get(script)
        assert asset.headers["content-type"].startswith("text/javascript")
        assert_security_headers(asset.headers)
    start = (await client.get("/schema/assets/docs.js")).text
    assert "SwaggerUIBundle(" in start
    assert "http" not in start


@pytest.mark.parametrize("path", LITESTAR_SITES)
async def test_litestar_cdn_pages_are_gone(client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "cdn" not in response.text.lower()
    assert "<script" not in response.text


async def test_the_openapi_document_is_still_served(client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Chat Sessions API"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_vendored_files_match_their_pinned_version_and_hashes() -> None:
    note = (DOCS_DIR / "swagger-ui" / "VERSION.md").read_text()
    assert "`swagger-ui-dist` **5.35.0**" in note
    pinned = {name: digest for digest, name in re.findall(r"`([0-9a-f]{64})`\s+(\S+)", note)}
    assert set(pinned) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in pinned.items():
        assert hashlib.sha256((DOCS_DIR / "swagger-ui" / name).read_bytes()).hexdigest() == digest, name
    for licence in ("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        assert (DOCS_DIR / "swagger-ui" / licence).stat().st_size > 0
