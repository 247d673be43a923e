"""The API's reference pages, Swagger UI at ``/docs/`` and ReDoc at ``/redoc/``, served with
their assets from Herald's own origin: they render on a machine without internet, and their
content security policy names no other origin and allows no inline script."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = Path(__file__).parent / "static"
SWAGGER_UI = Path(str(swagger_ui_path))
# Swagger UI comes from the swagger-ui-bundle-v2 package (its version pinned in pyproject.toml);
# ReDoc, which no PyPI package ships with its version stated, is vendored (static/*/SOURCE.md).
REDOC_DIR = "redoc-2.5.4"
SWAGGER_UI_MOUNT = "/docs/swagger-ui"
STATIC_MOUNT = "/docs/static"

# Both UIs set style attributes and inject <style> elements (React, styled-components), so
# styles need 'unsafe-inline'; scripts come only from these files, and the pages fetch
# nothing but /openapi.json. ReDoc draws its logos and icons as data: URIs and runs its
# search in a worker made from a blob.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{root}{swagger_ui}/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}{swagger_ui}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{root}{swagger_ui}/swagger-ui-bundle.js"></script>
<script src="{root}{static}/swagger-init.js"></script>
</body>
</html>
"""

# ReDoc starts by itself on the <redoc spec-url> element.
REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{root}{swagger_ui}/favicon-32x32.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{root}{static}/{redoc}/redoc.standalone.js"></script>
</body>
</html>
"""


def _page(request: Request, template: str) -> HTMLResponse:
    app: FastAPI = request.app
    # Behind a proxy that serves Herald under a prefix, the assets are under it too.
    root = escape(str(request.scope.get("root_path", "")).rstrip("/"))
    html = template.format(
        title=escape(app.title),
        root=root,
        swagger_ui=SWAGGER_UI_MOUNT,
        static=STATIC_MOUNT,
        redoc=REDOC_DIR,
        openapi=root + escape(app.openapi_url or ""),
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})


async def swagger_ui(request: Request) -> HTMLResponse:
    return _page(request, SWAGGER_PAGE)


async def redoc(request: Request) -> HTMLResponse:
    return _page(request, REDOC_PAGE)


def install_docs(app: FastAPI, docs_url: str = "/docs/", redoc_url: str = "/redoc/") -> None:
    """The two pages and their assets; FastAPI's own (``docs_url``, ``redoc_url``) must be
    off, as they load their assets from a CDN."""
    assert app.docs_url is None, "FastAPI's own Swagger UI page is on"
    assert app.redoc_url is None, "FastAPI's own ReDoc page is on"
    app.mount(SWAGGER_UI_MOUNT, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    app.mount(STATIC_MOUNT, StaticFiles(directory=STATIC), name="docs-static")
    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
