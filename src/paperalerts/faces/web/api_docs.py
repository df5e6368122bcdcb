"""The API's browsable documentation at ``/api/v1/docs``: Swagger UI from the installed
``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI 3.1), served by us, so it
works offline and loads nothing from a CDN.

The page is public, like ``/api/v1/openapi.json``: the schema holds no data, and every operation
it lists still needs a token (Swagger UI's "Authorize" takes one). The start-up script is a file
of ours rather than an inline script, so the site's Content-Security-Policy (``script-src
'self'``) holds; only inline styles, which Swagger UI sets as it renders, are allowed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_CSP: Final = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                   "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                   "base-uri 'none'; form-action 'none'")

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>paperalerts API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""

_INIT: Final = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false
  });
});
"""


def static_dir() -> Path:
    """Swagger UI's files as the package installed them."""
    return Path(swagger_ui_bundle.swagger_ui_path)


def install(api: FastAPI) -> None:
    """Add ``docs`` (the page), ``docs/init.js`` and ``docs/static/*`` to the API app; they
    are left out of its schema and need no token."""
    api.mount("/docs/static", StaticFiles(directory=str(static_dir())), name="api-docs-static")

    async def docs_page(_: Request) -> Response:
        return HTMLResponse(_PAGE, headers={"Content-Security-Policy": DOCS_CSP,
                                            "Cache-Control": "no-cache"})

    async def docs_init(_: Request) -> Response:
        return Response(_INIT, media_type="text/javascript")

    api.add_route("/docs", docs_page, include_in_schema=False)
    api.add_route("/docs/init.js", docs_init, include_in_schema=False)
