"""The API documentation (`/docs`: Swagger UI, `/redoc`: ReDoc) served offline.

The assets come from the `fastapi-offline` wheel (pinned in pyproject.toml), which
ships `swagger-ui-bundle.js`, `swagger-ui.css` and `redoc.standalone.js`; only those
files are used, mounted at `/static/docs/`. The pages are our own templates with an
external start-up script (`/static/docs-init.js`), so the policy of these two pages
needs no inline script and no other origin (see `DOCS_POLICY`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from supervisor.api.pages.common import render

DOCS_ASSETS_URL = "/static/docs"


def assets_dir() -> Path:
    """The folder of the installed documentation assets."""
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Mount the assets and add `/docs` and `/redoc` (the app is created without
    FastAPI's own, CDN-loading pages)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    title = app.title

    def page(request: Request, template: str) -> Response:
        return render(
            request, template, title=title, openapi_url=app.openapi_url, assets=DOCS_ASSETS_URL
        )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        return page(request, "docs_swagger.html")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        return page(request, "docs_redoc.html")
