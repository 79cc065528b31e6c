"""The API documentation at ``/schema``: Swagger UI served from files shipped in this package.

Litestar's own documentation pages load Redoc (unpinned), Swagger UI, Elements and RapiDoc
from public CDNs without integrity hashes, and start them with inline scripts. They share an
origin with the web page, which keeps the bearer token. Here ``/schema`` is one page of our
own (``docs/index.html``) that loads the pinned, vendored Swagger UI (``docs/swagger-ui/``,
see its ``VERSION.md``) and an external start script, under the same security headers as
the web page. ``/schema/openapi.json`` is Litestar's document, unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

from app.web.controllers import add_security_headers

DOCS_DIR = Path(__file__).parent / "docs"


class SwaggerUIPage(OpenAPIRenderPlugin):
    """``/schema`` (and ``/schema/swagger``): our page for the vendored Swagger UI; its files at ``/schema/assets``."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"])
        self.page = (DOCS_DIR / "index.html").read_bytes()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.page

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path="/assets",
                directories=[DOCS_DIR],
                name="docs-assets",
                cache_control=CacheControlHeader(no_cache=True),
                include_in_schema=False,
            )
        )


def docs_router() -> Router:
    """The router Litestar mounts the documentation on: every ``/schema`` answer gets the security headers."""
    return Router(path="/schema", route_handlers=[], include_in_schema=False, after_request=add_security_headers)
