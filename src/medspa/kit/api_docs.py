"""The API's documentation pages (`/docs`, Swagger UI; `/redoc`, ReDoc), served with their scripts and
styles by medspa itself, so they work on a clinic's closed network: nothing is loaded from another host
(the framework's defaults fetch them from a public CDN, and ReDoc's fonts from Google)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# The viewers' files, as the fastapi-offline package ships them (Swagger UI and ReDoc, MIT licensed).
ASSETS: Final = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL: Final = "/api-docs-assets"


def install_api_docs(app: FastAPI, *, title: str, openapi_url: str = "/openapi.json") -> None:
    """Serve `/docs`, its OAuth2 redirect page and `/redoc` from local assets. The app is made with
    `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="api-docs-assets")
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} · API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} · API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
